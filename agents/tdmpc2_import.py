"""Read a TD-MPC2 checkpoint (nicklashansen/tdmpc2, state-based multitask world models) into this
project's WorldModel.

TD-MPC2 saves `{"model": WorldModel.state_dict()}`. Its keys, per component (N = layer index):
  `_encoder.state.N.{weight,bias,ln.weight,ln.bias}`, `_dynamics.N.*`, `_reward.N.*`, `_pi.N.*`
      (Linear -> LayerNorm -> Mish hidden layers, then a NormedLinear+SimNorm output for encoder and
      dynamics, a plain Linear for reward and pi), `_task_emb.weight` [T, D] (multitask only),
  and the Q ensemble (two hidden layers and an output, parameters stacked over the num_q heads,
  each [num_q, out, in] / [num_q, out]) in one of two layouts:
  - current: `_Qs.params.N.<name>`, an identical copy `_detach_Qs_params.N.<name>`, the target
    ensemble `_target_Qs_params.N.<name>`, each group with TensorDict metadata
    (`<prefix>.__batch_size` = torch.Size([num_q]), `<prefix>.__device`); buffers `_action_masks`
    [T, A], `log_std_min`, `log_std_dif`;
  - older: flat `_Qs.params.<k>` and `_target_Qs.params.<k>`, k = 4 x layer + index into
    (weight, bias, ln.weight, ln.bias); the action masks and log-std bounds were not saved.

What differs from our WorldModel, and how the mapping handles it:
  - input order: TD-MPC2 feeds [z, task_emb, a] to dynamics, reward and Q; we feed [z, a, task_emb].
    The first layer's input columns are permuted (encoder [obs, emb] and pi [z, emb] already agree);
  - Q ensemble: our EnsembleLinear keeps weights as [num_q, in, out] and biases as [num_q, 1, out];
    LayerNorm affines as [num_q, 1, d]: transposed / reshaped on import;
  - log-std bounds and action masks are config and buffer here: taken from the file when it has them;
  - dropout (0.01, first Q hidden layer, before LayerNorm) is placed as in TD-MPC2: nothing to map.

Nothing here knows task sets: the caller gives the expected dims (`expected_architecture`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from agents.config import ModelConfig, model_preset

TDMPC2_MODEL_SIZES = ("1", "5", "19", "48", "317")
TDMPC2_TASK_SETS = ("mt30", "mt80")
Q_PARAM_NAMES = ("weight", "bias", "ln.weight", "ln.bias")  # older layout: index k % 4
Q_LAYERS = 3  # two hidden layers and the output
HEADS = ("_dynamics", "_reward", "_pi")
_TD_METADATA = ("__batch_size", "__device")


class TDMPC2CheckpointError(ValueError):
    """A file that is not the TD-MPC2 checkpoint asked for; the message says what differs."""


@dataclass(frozen=True)
class TDMPC2Architecture:
    """The dims that fix every tensor shape of a TD-MPC2 state-based world model."""

    num_tasks: int
    obs_dim: int
    action_dim: int
    task_dim: int
    latent_dim: int
    enc_dim: int
    mlp_dim: int
    num_enc_layers: int
    num_q: int
    num_bins: int = 101


def expected_architecture(
    task_set: str, model_size: str | int, *, num_tasks: int, obs_dim: int, action_dim: int
) -> TDMPC2Architecture:
    """The architecture TD-MPC2 uses for a published (task set, size), with its size rules: task_dim
    96 for mt80 and for mt30 at 1M/317M, else 64; the mt30 19M model has latent 512."""
    size = str(model_size)
    if size not in TDMPC2_MODEL_SIZES:
        raise TDMPC2CheckpointError(
            f"model_size={model_size!r} is not a TD-MPC2 size; published sizes: {', '.join(TDMPC2_MODEL_SIZES)}"
        )
    if task_set not in TDMPC2_TASK_SETS:
        raise TDMPC2CheckpointError(
            f"task_set={task_set!r}: TD-MPC2 published multitask checkpoints for {' and '.join(TDMPC2_TASK_SETS)} only"
        )
    dims = model_preset(size)
    latent = 512 if (task_set, size) == ("mt30", "19") else dims["latent_dim"]
    task_dim = 96 if task_set == "mt80" or size in ("1", "317") else 64
    return TDMPC2Architecture(
        num_tasks=num_tasks,
        obs_dim=obs_dim,
        action_dim=action_dim,
        task_dim=task_dim,
        latent_dim=latent,
        enc_dim=dims["enc_dim"],
        mlp_dim=dims["mlp_dim"],
        num_enc_layers=dims["num_enc_layers"],
        num_q=dims["num_q"],
    )


@dataclass
class TDMPC2Weights:
    """A checkpoint read into one layout: `params` keyed by the current layout's names (Q ensemble
    as `_Qs.params.N.<name>` and `_target_Qs_params.N.<name>`), plus what was inferred from it."""

    layout: str  # "current" | "older"
    params: dict[str, torch.Tensor]
    arch: TDMPC2Architecture
    action_masks: torch.Tensor | None  # [T, A] when the file has them
    log_std_min: float | None
    log_std_max: float | None
    target_q: str = "file"  # or "online copy": an older-layout file without target Q parameters


# -- reading ------------------------------------------------------------------------------------------
def load_tdmpc2_file(path: str | os.PathLike) -> dict:
    """The model state dict of a TD-MPC2 checkpoint file (`{"model": state_dict}` or a bare state
    dict), read with torch.load(weights_only=True) onto the CPU."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no TD-MPC2 checkpoint file at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated file, or pickled objects weights_only refuses
        raise TDMPC2CheckpointError(
            f"{path} does not load with torch.load(weights_only=True): {exc}. A TD-MPC2 "
            f"checkpoint is a torch.save'd dict of tensors"
        ) from exc
    return unwrap_state(state, str(path))


def unwrap_state(state, where: str = "checkpoint") -> dict:
    """The model state dict inside what torch.load returned (`{"model": ...}` or the dict itself)."""
    if isinstance(state, Mapping) and isinstance(state.get("agent"), Mapping) and "identity" in state["agent"]:
        raise TDMPC2CheckpointError(f"{where} is a latentfleet checkpoint, not a TD-MPC2 one: use it directly")
    if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        state = state["model"]
    if not isinstance(state, Mapping) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise TDMPC2CheckpointError(
            f"{where} holds no state dict of tensors (a TD-MPC2 checkpoint is "
            f"{{'model': WorldModel.state_dict()}}); got {type(state).__name__}"
        )
    return dict(state)


def _normalise_q(state: dict) -> tuple[str, dict[str, torch.Tensor], list[str]]:
    """(layout, Q tensors under current-layout names, the other keys left to read)."""
    current = any(k.startswith(("_detach_Qs_params.", "_target_Qs_params.")) for k in state)
    older = any(re.fullmatch(r"_(target_)?Qs\.params\.\d+", k) for k in state)
    if current and older:
        raise TDMPC2CheckpointError(
            "the file mixes TD-MPC2's two Q-ensemble key layouts (flat `_Qs.params.<k>` "
            "and `_target_Qs_params.<layer>.<name>`): it is not a saved TD-MPC2 model"
        )
    q, rest = {}, []
    if older:
        for key, value in state.items():
            m = re.fullmatch(r"_(target_)?Qs\.params\.(\d+)", key)
            if m is None:
                rest.append(key)
                continue
            k = int(m.group(2))
            name = f"{k // 4}.{Q_PARAM_NAMES[k % 4]}"
            q[(f"_target_Qs_params.{name}" if m.group(1) else f"_Qs.params.{name}")] = value
        return "older", q, rest
    detached = {}
    for key, value in state.items():
        if key.startswith("_Qs.params.") or key.startswith("_target_Qs_params."):
            if key.rsplit(".", 1)[-1] in _TD_METADATA:
                _check_batch_size(key, value)
            else:
                q[key] = value
        elif key.startswith("_detach_Qs_params."):
            if key.rsplit(".", 1)[-1] in _TD_METADATA:
                _check_batch_size(key, value)
            else:
                detached[key[len("_detach_Qs_params.") :]] = value
        elif key.startswith(("_detach_Qs.", "_target_Qs.", "_Qs.module.")):
            continue  # module views of the same parameters, when a TensorDict version also saves them
        else:
            rest.append(key)
    for name, value in detached.items():  # TD-MPC2 saves the online parameters twice; they must agree
        online = q.get(f"_Qs.params.{name}")
        same = online is value or (online is not None and online.shape == value.shape and torch.equal(online, value))
        if online is not None and not same:
            raise TDMPC2CheckpointError(
                f"_detach_Qs_params.{name} differs from _Qs.params.{name}: TD-MPC2 keeps "
                f"them identical, so the file is corrupted or was edited"
            )
    return "current", q, rest


def _check_batch_size(key: str, value) -> None:
    if key.endswith("__batch_size") and not isinstance(value, (torch.Size, tuple, list)):
        raise TDMPC2CheckpointError(f"{key} should be TensorDict metadata (a torch.Size), got {type(value).__name__}")


def _shape(params: dict, key: str) -> tuple[int, ...] | None:
    v = params.get(key)
    return tuple(v.shape) if isinstance(v, torch.Tensor) else None


def _checked_shape(params: dict, key: str) -> tuple[int, ...]:
    """The shape of a key already checked to be present and a tensor."""
    shape = _shape(params, key)
    if shape is None:
        raise TDMPC2CheckpointError(f"the file lacks {key!r} or holds no tensor there")
    return shape


def parse_tdmpc2_state(state: Mapping, *, multitask: bool = True) -> TDMPC2Weights:
    """Normalise either key layout and infer the architecture from the tensor shapes; raises
    TDMPC2CheckpointError naming missing, unexpected or mis-shaped keys, and (with `multitask`) a
    single-task file. An older-layout file with no target Q parameters at all (TD-MPC2 users met
    published files like that, its issue #11) gets targets copied from the online Q ensemble, as
    TD-MPC2 initialises them; `target_q` records it."""
    state = unwrap_state(state)
    if multitask and "_task_emb.weight" not in state:
        raise TDMPC2CheckpointError(
            "the file is a single-task TD-MPC2 checkpoint (no _task_emb.weight), but a "
            "multitask one was asked for; only the published mt30/mt80 models import"
        )
    layout, params, rest = _normalise_q(dict(state))
    if any(k.startswith("_encoder.rgb.") for k in rest):
        raise TDMPC2CheckpointError(
            "this is a pixel-based (rgb encoder) TD-MPC2 checkpoint; only state-based "
            "checkpoints (mt30 / mt80) map onto this project's model"
        )
    target_q = "file"
    if layout == "older" and not any(k.startswith("_target_Qs_params.") for k in params):
        target_q = "online copy"
        for key in [k for k in params if k.startswith("_Qs.params.")]:
            params["_target_Qs_params." + key[len("_Qs.params.") :]] = params[key].clone()
    masks = state.get("_action_masks")
    lo, dif = state.get("log_std_min"), state.get("log_std_dif")
    for key in rest:
        if key in ("_action_masks", "log_std_min", "log_std_dif"):
            continue
        params[key] = state[key]
    enc = sorted(int(m.group(1)) for k in params if (m := re.fullmatch(r"_encoder\.state\.(\d+)\.weight", k)))
    num_enc_layers = max(len(enc), 2)  # TD-MPC2 builds max(num_enc_layers - 1, 1) hidden layers + an output
    multitask = "_task_emb.weight" in params
    missing = [k for k in canonical_keys(num_enc_layers, multitask) if k not in params]
    if missing:
        raise TDMPC2CheckpointError(
            f"the file lacks {len(missing)} key(s) of a TD-MPC2 world model "
            f"({layout} layout): {missing[:12]}{' ...' if len(missing) > 12 else ''}"
        )
    unexpected = sorted(set(params) - set(canonical_keys(num_enc_layers, multitask)))
    if unexpected:
        raise TDMPC2CheckpointError(
            f"unexpected keys for a TD-MPC2 state-based world model: {unexpected[:12]}"
            f"{' ...' if len(unexpected) > 12 else ''}"
        )
    not_tensor = [k for k, v in params.items() if not isinstance(v, torch.Tensor)]
    if not_tensor:
        raise TDMPC2CheckpointError(f"keys {not_tensor[:8]} hold no tensors")
    nonfinite = [k for k, v in params.items() if v.device.type != "meta" and not torch.isfinite(v).all()]
    if nonfinite:
        raise TDMPC2CheckpointError(
            f"keys {nonfinite[:8]} hold NaN or infinite values: the run that saved this checkpoint had diverged"
        )
    T, D = _shape(params, "_task_emb.weight") or (1, 0)
    last = num_enc_layers - 1
    num_q = _checked_shape(params, "_Qs.params.0.weight")[0]
    arch = TDMPC2Architecture(
        num_tasks=T,
        task_dim=D,
        obs_dim=_checked_shape(params, "_encoder.state.0.weight")[1] - D,
        action_dim=_checked_shape(params, "_pi.2.weight")[0] // 2,
        latent_dim=_checked_shape(params, f"_encoder.state.{last}.weight")[0],
        enc_dim=_checked_shape(params, "_encoder.state.0.weight")[0],
        mlp_dim=_checked_shape(params, "_dynamics.0.weight")[0],
        num_enc_layers=num_enc_layers,
        num_q=num_q,
        num_bins=_checked_shape(params, "_reward.2.weight")[0],
    )
    want = expected_shapes(arch)
    bad = {k: (_shape(params, k), s) for k, s in want.items() if _shape(params, k) != s}
    if bad:
        lines = "; ".join(f"{k} is {a}, expected {b}" for k, (a, b) in list(bad.items())[:8])
        raise TDMPC2CheckpointError(f"tensor shapes do not form one TD-MPC2 model ({arch}): {lines}")
    if masks is not None:
        if not isinstance(masks, torch.Tensor) or tuple(masks.shape) != (T, arch.action_dim):
            raise TDMPC2CheckpointError(
                f"_action_masks should be [{T}, {arch.action_dim}], got {getattr(masks, 'shape', type(masks).__name__)}"
            )
        if not torch.all((masks == 0) | (masks == 1)) or torch.any(masks.sum(-1) == 0):
            raise TDMPC2CheckpointError("_action_masks must be 0/1 with at least one active dim per task")
    log_std_min = log_std_max = None
    if lo is not None and dif is not None:
        log_std_min, log_std_max = float(lo), float(lo) + float(dif)
    return TDMPC2Weights(
        layout=layout,
        params={k: v.detach().float() for k, v in params.items()},
        arch=arch,
        action_masks=None if masks is None else masks.detach().float(),
        log_std_min=log_std_min,
        log_std_max=log_std_max,
        target_q=target_q,
    )


def canonical_keys(num_enc_layers: int, multitask: bool) -> list[str]:
    """Every parameter key of a TD-MPC2 state-based world model, in the current layout's names."""
    keys = ["_task_emb.weight"] if multitask else []
    normed = ("weight", "bias", "ln.weight", "ln.bias")
    for i in range(num_enc_layers):
        keys += [f"_encoder.state.{i}.{n}" for n in normed]
    for head in HEADS:
        keys += [f"{head}.{i}.{n}" for i in range(2) for n in normed]
        keys += [f"{head}.2.{n}" for n in (normed if head == "_dynamics" else ("weight", "bias"))]
    for prefix in ("_Qs.params.", "_target_Qs_params."):
        keys += [f"{prefix}{i}.{n}" for i in range(2) for n in normed] + [f"{prefix}2.weight", f"{prefix}2.bias"]
    return keys


def expected_shapes(a: TDMPC2Architecture) -> dict[str, tuple[int, ...]]:
    """TD-MPC2's tensor shape for every canonical key of architecture `a`."""
    out: dict[str, tuple[int, ...]] = {}

    def layer(prefix: str, i: int, d_in: int, d_out: int, normed: bool = True, k: int | None = None) -> None:
        lead = () if k is None else (k,)
        out[f"{prefix}.{i}.weight"], out[f"{prefix}.{i}.bias"] = lead + (d_out, d_in), lead + (d_out,)
        if normed:
            out[f"{prefix}.{i}.ln.weight"] = out[f"{prefix}.{i}.ln.bias"] = lead + (d_out,)

    if a.task_dim:
        out["_task_emb.weight"] = (a.num_tasks, a.task_dim)
    enc = [a.obs_dim + a.task_dim] + [a.enc_dim] * (a.num_enc_layers - 1) + [a.latent_dim]
    for i in range(a.num_enc_layers):
        layer("_encoder.state", i, enc[i], enc[i + 1])
    za = a.latent_dim + a.task_dim + a.action_dim
    for head, d_in, d_out in (
        ("_dynamics", za, a.latent_dim),
        ("_reward", za, a.num_bins),
        ("_pi", a.latent_dim + a.task_dim, 2 * a.action_dim),
    ):
        layer(head, 0, d_in, a.mlp_dim)
        layer(head, 1, a.mlp_dim, a.mlp_dim)
        layer(head, 2, a.mlp_dim, d_out, normed=head == "_dynamics")
    for prefix in ("_Qs.params", "_target_Qs_params"):
        layer(prefix, 0, za, a.mlp_dim, k=a.num_q)
        layer(prefix, 1, a.mlp_dim, a.mlp_dim, k=a.num_q)
        layer(prefix, 2, a.mlp_dim, a.num_bins, normed=False, k=a.num_q)
    return out


# -- checking -----------------------------------------------------------------------------------------
def check_architecture(
    found: TDMPC2Architecture,
    expected: TDMPC2Architecture,
    asked: str,
    candidates: Mapping[str, TDMPC2Architecture] | None = None,
) -> None:
    """Raise naming every dim where the file differs from what `asked` (e.g. "task_set=mt80
    model_size=5") expects, and which of `candidates` (label -> architecture) it does match."""
    if found.task_dim == 0 and expected.task_dim:
        raise TDMPC2CheckpointError(
            f"the file is a single-task TD-MPC2 checkpoint (no _task_emb.weight, "
            f"{found.obs_dim} obs dims, {found.action_dim} action dims), but {asked} asks "
            f"for a multitask one; only the published mt30/mt80 models import"
        )
    diffs = {k: (v, getattr(expected, k)) for k, v in asdict(found).items() if getattr(expected, k) != v}
    if not diffs:
        return
    matches = [label for label, arch in (candidates or {}).items() if arch == found]
    hint = (
        f"; the file matches {' or '.join(matches)}"
        if matches
        else "; it matches no published TD-MPC2 task set and size"
    )
    lines = ", ".join(f"{k}: file has {a}, {asked} expects {b}" for k, (a, b) in diffs.items())
    raise TDMPC2CheckpointError(f"the checkpoint does not match {asked} ({lines}){hint}")


def check_action_masks(masks: torch.Tensor, reference: torch.Tensor, task_names: list[str]) -> None:
    """The file's masks must activate exactly the task set's action dims (else task ids or bodies differ)."""
    bad = [
        f"{task_names[i]} (file {int(masks[i].sum())} dims, task set {int(reference[i].sum())})"
        for i in range(len(task_names))
        if not torch.equal(masks[i], reference[i])
    ]
    if bad:
        raise TDMPC2CheckpointError(
            f"the checkpoint's _action_masks disagree with the task set at {bad[:6]}: "
            f"the task order or the bodies differ from TD-MPC2's"
        )


# -- mapping ------------------------------------------------------------------------------------------
def model_config(w: TDMPC2Weights, model_size: str | int, **overrides) -> ModelConfig:
    """Our ModelConfig for the weights (TD-MPC2's defaults where the file carries no value:
    SimNorm groups of 8, bins in [-10, 10], dropout 0.01, log-std in [-10, 2])."""
    a = w.arch
    fields: dict[str, Any] = dict(
        obs_dim=a.obs_dim,
        action_dim=a.action_dim,
        num_tasks=a.num_tasks,
        model_size=str(model_size),
        enc_dim=a.enc_dim,
        mlp_dim=a.mlp_dim,
        latent_dim=a.latent_dim,
        num_enc_layers=a.num_enc_layers,
        num_q=a.num_q,
        task_dim=a.task_dim or ModelConfig.task_dim,
        num_bins=a.num_bins,
        task_conditioning="table",
    )
    if w.log_std_min is not None:
        fields.update(log_std_min=w.log_std_min, log_std_max=w.log_std_max)
    return ModelConfig(**{**fields, **overrides})


def _first_layer_to_ours(weight: torch.Tensor, a: TDMPC2Architecture) -> torch.Tensor:
    """[..., out, L + D + A] in TD-MPC2's input order (z, task_emb, a) -> ours (z, a, task_emb)."""
    L, D = a.latent_dim, a.task_dim
    return torch.cat([weight[..., :L], weight[..., L + D :], weight[..., L : L + D]], dim=-1)


@torch.no_grad()
def load_into_world_model(model, w: TDMPC2Weights) -> None:
    """Copy the weights into `model` (an agents.world_model.WorldModel built from `model_config(w)`);
    every parameter and buffer of `model` except the fixed two-hot support must be set."""
    p, a = w.params, w.arch
    written: set[int] = set()

    def put(dst: torch.Tensor, src: torch.Tensor, name: str) -> None:
        if tuple(dst.shape) != tuple(src.shape):
            raise TDMPC2CheckpointError(
                f"{name}: mapped shape {tuple(src.shape)} does not fit the model's {tuple(dst.shape)}"
            )
        dst.copy_(src.to(dst.dtype))
        written.add(id(dst))

    def sequential(ours, theirs: str, n: int, permute_first: bool) -> None:
        for i in range(n):
            wt = p[f"{theirs}.{i}.weight"]
            put(
                ours[i].weight,
                _first_layer_to_ours(wt, a) if (i == 0 and permute_first) else wt,
                f"{theirs}.{i}.weight",
            )
            put(ours[i].bias, p[f"{theirs}.{i}.bias"], f"{theirs}.{i}.bias")
            if hasattr(ours[i], "ln"):
                put(ours[i].ln.weight, p[f"{theirs}.{i}.ln.weight"], f"{theirs}.{i}.ln.weight")
                put(ours[i].ln.bias, p[f"{theirs}.{i}.ln.bias"], f"{theirs}.{i}.ln.bias")

    def ensemble(ours, prefix: str) -> None:
        for i, lin in enumerate(list(ours.linears) + [ours.out]):
            wt = p[f"{prefix}{i}.weight"]  # [K, out, in]
            if i == 0:
                wt = _first_layer_to_ours(wt, a)
            put(lin.weight, wt.transpose(1, 2), f"{prefix}{i}.weight")
            put(lin.bias, p[f"{prefix}{i}.bias"].unsqueeze(1), f"{prefix}{i}.bias")
            if i < len(ours.linears):
                put(ours.ln_weight[i], p[f"{prefix}{i}.ln.weight"].unsqueeze(1), f"{prefix}{i}.ln.weight")
                put(ours.ln_bias[i], p[f"{prefix}{i}.ln.bias"].unsqueeze(1), f"{prefix}{i}.ln.bias")

    if len(model.qs.linears) != Q_LAYERS - 1:
        raise TDMPC2CheckpointError(
            f"TD-MPC2's Q heads have {Q_LAYERS - 1} hidden layers, the model {len(model.qs.linears)}"
        )
    sequential(model.encoder, "_encoder.state", a.num_enc_layers, permute_first=False)
    sequential(model.dynamics, "_dynamics", 3, permute_first=True)
    sequential(model.reward_head, "_reward", 3, permute_first=True)
    sequential(model.policy, "_pi", 3, permute_first=False)
    ensemble(model.qs, "_Qs.params.")
    ensemble(model.target_qs, "_target_Qs_params.")
    if model.task_emb is not None:
        put(model.task_emb.weight, p["_task_emb.weight"], "_task_emb.weight")
    if w.action_masks is not None:
        put(model.action_masks, w.action_masks, "_action_masks")
    else:
        written.add(id(model.action_masks))  # the caller built the model with the task set's masks
    unset = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if id(t) not in written]
    if unset:
        raise TDMPC2CheckpointError(
            f"the import does not know how to fill {unset} of this project's world model: "
            f"agents/tdmpc2_import.py needs updating for the model change"
        )


# -- an agent from TD-MPC2's weights and hyperparameters ---------------------------------------------------
TDMPC2_HYPERPARAMETERS = (
    "lr",
    "enc_lr_scale",
    "grad_clip_norm",
    "tau",
    "rho",
    "consistency_coef",
    "reward_coef",
    "value_coef",
    "entropy_coef",
    "dropout",
    "simnorm_dim",
    "log_std_min",
    "log_std_max",
    "horizon",
)


def agent_from_tdmpc2_state(
    state: Mapping, hyper: Mapping, episode_lengths, *, multitask: bool, model_size="1", optim: Mapping | None = None
):
    """Our Agent holding a TD-MPC2 world model's weights (`state`, its WorldModel.state_dict()) with TD-MPC2's
    hyperparameters (`hyper`: the TDMPC2_HYPERPARAMETERS of its config) and one discount per episode length,
    as TD-MPC2 computes them; everything else is our default config (TD-MPC2's update: README, "Parity").
    `optim`: OptimConfig fields to change (a departure to measure)."""
    from agents.agent import Agent
    from agents.config import AgentConfig, OptimConfig, PlannerConfig, discount_from_episode_length

    w = parse_tdmpc2_state(state, multitask=multitask)
    h = {k: hyper[k] for k in TDMPC2_HYPERPARAMETERS}
    mc = model_config(
        w,
        model_size,
        dropout=float(h["dropout"]),
        simnorm_dim=int(h["simnorm_dim"]),
        log_std_min=float(h["log_std_min"]),
        log_std_max=float(h["log_std_max"]),
    )
    opt = OptimConfig(
        **{
            "lr": float(h["lr"]),
            "enc_lr_scale": float(h["enc_lr_scale"]),
            "grad_clip_norm": float(h["grad_clip_norm"]),
            "tau": float(h["tau"]),
            "rho": float(h["rho"]),
            "consistency_coef": float(h["consistency_coef"]),
            "reward_coef": float(h["reward_coef"]),
            "value_coef": float(h["value_coef"]),
            "entropy_coef": float(h["entropy_coef"]),
            "scale_tau": float(h["tau"]),
            **(optim or {}),
        }
    )
    cfg = AgentConfig(
        model=mc,
        optim=opt,
        planner=PlannerConfig(horizon=int(h["horizon"])),
        discounts=tuple(discount_from_episode_length(int(L)) for L in episode_lengths),
    )
    masks = w.action_masks if w.action_masks is not None else torch.ones(1, mc.action_dim)
    agent = Agent(cfg, action_masks=masks)
    load_into_world_model(agent.model, w)
    return agent


__all__ = [
    "TDMPC2Architecture",
    "TDMPC2CheckpointError",
    "TDMPC2Weights",
    "TDMPC2_MODEL_SIZES",
    "TDMPC2_TASK_SETS",
    "TDMPC2_HYPERPARAMETERS",
    "agent_from_tdmpc2_state",
    "canonical_keys",
    "check_action_masks",
    "check_architecture",
    "expected_architecture",
    "expected_shapes",
    "load_into_world_model",
    "load_tdmpc2_file",
    "model_config",
    "parse_tdmpc2_state",
]
