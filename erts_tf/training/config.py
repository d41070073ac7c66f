"""``RunConfig``: every setting of a training run (the flags of ``erts_tf.flags``)."""

from __future__ import annotations

import dataclasses

from erts_tf.selection.policy_config import PolicyConfig


@dataclasses.dataclass(frozen=True)
class RunConfig:
    output_dir: str
    dataset: str = "synthetic_ecg"
    dataset_config: str | None = None
    data_dir: str | None = None
    manual_dir: str | None = None
    data_backend: str = "memory"
    malloc_arena_max: int = -1
    exclude_classes: str = ""
    cv_folds: int = 0
    cv_fold: int = 0
    cv_group_feature: str = "record"
    window_s: float = 0.0
    eval_window_stride_s: float = 0.0
    window_aggregate: str = "mean"
    task: str = "single"
    label_feature: str = ""
    min_label_count: int = 1
    model: str = "resnet1d"
    epochs: int = 100
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 0.01
    lr_decay: float = 0.98
    lr_schedule: str = "exponential"
    lr_warmup_epochs: int = 0
    early_stop_patience: int = 0
    keep_weights: str = "best"
    ema_momentum: float = 0.0
    augment: str = ""
    loss: str = "class_balanced"
    cb_beta: float = 0.9999
    cb_max_ratio: float = 10.0
    class_weights: str = ""
    reference_loss_split: bool = False
    mode: str = "erts"
    level: str = "epoch"
    tau: float = PolicyConfig.tau
    decay: float = PolicyConfig.decay
    cam_keep_frac: float = PolicyConfig.cam_keep_frac
    focus_score: str = "entropy"
    prune_ratio: float = PolicyConfig.prune_ratio
    anneal_frac: float = 0.0
    unreliable_frac: float = PolicyConfig.unreliable_frac
    unreliable_weight: float = PolicyConfig.unreliable_weight
    min_keep_frac: float = 0.2
    warm_up_epochs: int = 5
    cam_start_epoch: int = 3
    start_revision: int = 50
    rescore_every: int = 5
    focus_every: int = 1
    always_cam: bool = False
    seed: int = 0
    resume: bool = False
    overwrite: bool = False
    skip_nonfinite: bool = False
    jit_compile: bool = False
    strategy: str = "default"
    verbose: int = 2
    report: bool = True
    tensorboard_images_every: int = 5

    def to_json(self) -> dict:
        return dataclasses.asdict(self)
