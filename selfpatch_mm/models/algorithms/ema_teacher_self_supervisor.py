# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""A student and its EMA teacher, both built from the model config.

Shared by :class:`SelfPatch` and :class:`DINOSelfSupervisor`. The teacher is
an ``nn.ModuleDict`` whose parts (``teacher.backbone``, ``teacher.neck``,
``teacher.head``, ``teacher.patch_head``) are built from the same configs as
the student's, with two official differences: heads get no loss (the
losses and their centres are the student's), and the backbone no stochastic
depth (the official teacher is built with ``drop_path_rate=0``).
"""
import copy
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmpretrain.models import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import nn

from ..utils import check_finite_losses, compile_module, feature_std

__all__ = ['EMATeacherSelfSupervisor']


class EMATeacherSelfSupervisor(BaseSelfSupervisor):
    """Base of the DINO-style algorithms: student parts plus an EMA teacher.

    Subclasses build their student parts, then call :meth:`build_teacher`
    with the same configs, and implement ``loss``. :class:`TeacherEMAHook`
    calls :meth:`update_teacher` after every optimizer step and
    :class:`TeacherTempWarmupHook` calls :meth:`set_teacher_temp`.

    Args:
        backbone (dict): Backbone config.
        neck (dict, optional): Neck config.
        head (dict): Image-level head config, with its ``loss``.
        **kwargs: ``data_preprocessor``, ``init_cfg``, ``pretrained``.
    """

    #: Student attributes mirrored by the teacher, in EMA order.
    _parts: Tuple[str, ...] = ('backbone', 'neck', 'head')
    #: Name of each head in the health figures' keys.
    _health_names = dict(head='cls', patch_head='patch')

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 neck: Optional[dict] = None,
                 **kwargs) -> None:
        super().__init__(backbone=backbone, neck=neck, head=head, **kwargs)

    @staticmethod
    def teacher_cfg(cfg: dict) -> dict:
        """The teacher's config of a student part: no loss, no drop-path.

        Args:
            cfg (dict): The student part's config.

        Returns:
            dict: A copy with ``loss=None`` and ``drop_path_rate=0`` where
            the part takes those arguments.
        """
        cfg = copy.deepcopy(cfg)
        if 'loss' in cfg:
            cfg['loss'] = None
        if 'drop_path_rate' in cfg:
            cfg['drop_path_rate'] = 0.0
        return cfg

    def build_teacher(self, **cfgs: Optional[Union[dict, nn.Module]]) -> None:
        """Build ``self.teacher`` from the student parts' configs.

        Args:
            **cfgs: One config per name of :attr:`_parts`; None for a part
                the model does not have (it is then absent from the teacher
                too).

        Raises:
            TypeError: If a part was given as a built module (the teacher
                must be built from a config).
        """
        teacher = {}
        # The teacher's random init is overwritten by the student's weights
        # (init_weights), so building it must not move the global generator:
        # a seed then draws the same student as a model without a teacher.
        with torch.random.fork_rng(devices=[]):
            for name in self._parts:
                cfg = cfgs.get(name)
                if cfg is None:
                    continue
                if isinstance(cfg, nn.Module):
                    raise TypeError(
                        f'{type(self).__name__} builds its teacher from the '
                        f'config of `{name}`; got a built {type(cfg)}.')
                teacher[name] = MODELS.build(self.teacher_cfg(cfg))
        self.teacher = nn.ModuleDict(teacher)
        self.teacher.requires_grad_(False).eval()
        shapes = [tuple(p.shape) for p in self.teacher.parameters()]
        if shapes != [tuple(p.shape) for p in self._student_params()]:
            raise RuntimeError('The teacher parameters do not match the '
                               "student's one for one.")

    def _student_params(self) -> List[nn.Parameter]:
        """Student parameters in the teacher's order (``_parts`` order)."""
        return [
            p for name in self._parts if getattr(self, name, None) is not None
            for p in getattr(self, name).parameters()
        ]

    def init_weights(self) -> None:
        """Initialise the student, then start the teacher from it."""
        super().init_weights()
        self.update_teacher(0.0)

    def train(self, mode: bool = True) -> 'EMATeacherSelfSupervisor':
        # The teacher always runs without stochastic depth or dropout.
        super().train(mode)
        self.teacher.eval()
        return self

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """``teacher = momentum * teacher + (1 - momentum) * student``."""
        teacher = list(self.teacher.parameters())
        student = self._student_params()
        assert len(teacher) == len(student)
        torch._foreach_mul_(teacher, momentum)
        torch._foreach_add_(teacher, student, alpha=1 - momentum)

    def compile_parts(self,
                      parts: Optional[Sequence[str]] = None,
                      losses: bool = False,
                      **options) -> List[str]:
        """``torch.compile`` the student's and the teacher's parts in place.

        Each part is its own graph per crop resolution (and per net: the
        teacher's run without grad, stochastic depth or, in SelfPatch, the
        same neck mode), compiled at its first call. The positive matching
        is traced inside the neck's graph and the teacher's parts too, so
        the EMA update and checkpoints see the same parameters and keys as
        in eager mode (see ``selfpatch_mm.models.utils.compile``).

        Args:
            parts (Sequence[str], optional): Names out of :attr:`_parts`;
                None compiles all of them.
            losses (bool): Also compile the student heads' loss modules
                (softmaxes, cross-entropies, health figures and the centre
                update). Under DDP the centre's all-reduce splits their
                graph.
            **options: ``torch.compile`` arguments over
                ``COMPILE_DEFAULTS`` (``dynamic=False``).

        Returns:
            list[str]: The compiled modules' names (``backbone``,
            ``teacher.backbone``, ``head.loss_module``, ...).

        Raises:
            ValueError: If a name is not one of :attr:`_parts`.
        """
        parts = self._parts if parts is None else tuple(parts)
        unknown = sorted(set(parts) - set(self._parts))
        if unknown:
            raise ValueError(
                f'compile_parts: {unknown} are not parts of '
                f'{type(self).__name__}; choose from {self._parts}.')
        names = []
        for name in parts:
            for prefix, net in (('', self), ('teacher.', self.teacher)):
                module = getattr(net, name, None)
                if module is not None:
                    compile_module(module, **options)
                    names.append(prefix + name)
        if losses:
            for name, loss in self._loss_modules().items():
                compile_module(loss, **options)
                names.append(f'{name}.loss_module')
        return names

    def set_teacher_temp(self, temp: float) -> None:
        """Set the teacher temperature of every loss."""
        for loss in self._loss_modules().values():
            loss.set_teacher_temp(temp)

    def _loss_modules(self) -> Dict[str, nn.Module]:
        """The student heads' loss modules, by part name."""
        parts = (getattr(self, name, None) for name in self._parts)
        return {
            name: part.loss_module
            for name, part in zip(self._parts, parts)
            if getattr(part, 'loss_module', None) is not None
        }

    def set_log_health(self, enabled: bool) -> None:
        """Switch the health figures (:meth:`health_figures`) on or off."""
        self.log_health = bool(enabled)
        for loss in self._loss_modules().values():
            loss.log_health = self.log_health

    @torch.no_grad()
    def health_figures(self,
                       **features: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Health figures of the step's loss calls, to log beside the
        losses (see ``selfpatch_mm.models.utils.health``).

        Args:
            **features (Tensor): Per head name (``cls``, ``patch``), the
                ``(..., C)`` features the teacher's head read.

        Returns:
            dict[str, Tensor]: fp32 scalars named ``health/<head>_<figure>``
            (no ``loss`` in the names: ``parse_losses`` sums only those);
            empty when the figures are off.
        """
        if not self.log_health:
            return {}
        figures = {
            f'health/{self._health_names[part]}_{key}': value
            for part, loss in self._loss_modules().items()
            for key, value in loss.health.items()
        }
        figures.update({
            f'health/{name}_feat_std': feature_std(feat)
            for name, feat in features.items() if feat is not None
        })
        return figures

    def extract_feat(self, inputs: torch.Tensor, net: str = 'teacher'):
        """Backbone features, as mmpretrain's ``FeatureExtractor``,
        ``get_flops.py`` and ``forward(mode='tensor')`` expect.

        Args:
            inputs (Tensor): Images ``(B, 3, H, W)``.
            net (str): ``'teacher'`` (the EMA weights, which the official
                evaluations use) or ``'student'``.

        Returns:
            tuple[Tensor] | Tensor: The backbone's output.
        """
        if net not in ('teacher', 'student'):
            raise ValueError(f"net must be 'teacher' or 'student', got {net}")
        backbone = self.teacher.backbone if net == 'teacher' else self.backbone
        return backbone(inputs)

    def image_feat(self, inputs: torch.Tensor) -> torch.Tensor:
        """The teacher's image-level feature ``(B, C)`` (subclasses)."""
        raise NotImplementedError

    def forward(self,
                inputs: Union[torch.Tensor, List[torch.Tensor]],
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor'):
        """mmpretrain's ``tensor`` and ``loss`` modes, plus ``predict``:
        the image features that ``tools/test.py`` dumps (see
        :meth:`predict`)."""
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        return super().forward(inputs, data_samples, mode)

    @torch.no_grad()
    def predict(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None
                ) -> List[DataSample]:
        """One :class:`DataSample` per image with the teacher's image-level
        feature in its ``feat`` field (``(C,)``)."""
        feats = self.image_feat(inputs)
        if data_samples is None:
            data_samples = [DataSample() for _ in range(len(feats))]
        for sample, feat in zip(data_samples, feats):
            sample.set_field(feat, 'feat')
        return data_samples

    def parse_losses(
        self, losses: Dict[str, torch.Tensor]
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """mmengine's sum of the losses (the keys naming a ``loss``), then a
        stop on every rank if any loss term is non-finite (before the
        optimizer step can spread it).

        The health figures are logged but neither summed nor checked: they
        come from the same logits and features as the losses, so a
        non-finite figure goes with a non-finite loss, which stops the run;
        on their own they are a measurement, not a state to stop on (the
        collapse monitor decides on them)."""
        loss, log_vars = super().parse_losses(losses)
        check_finite_losses(
            {k: v for k, v in log_vars.items() if 'loss' in k})
        return loss, log_vars
