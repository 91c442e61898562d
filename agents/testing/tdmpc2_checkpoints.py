"""Synthetic TD-MPC2 checkpoints for the import tests, written from TD-MPC2's published architecture
(nicklashansen/tdmpc2: common/world_model.py, common/layers.py, common/__init__.py, common/parser.py),
independently of agents/tdmpc2_import.py, plus a forward pass computed straight from the raw tensors.

Nothing can be downloaded here, so these stand in for the published files: same keys, shapes,
layouts and metadata; random weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# TD-MPC2's MODEL_SIZE table (enc_dim, mlp_dim, latent_dim, num_enc_layers, num_q), num_q 5 unless given
SIZES = {
    1: (256, 384, 128, 2, 2),
    5: (256, 512, 512, 2, 5),
    19: (1024, 1024, 768, 3, 5),
    48: (1792, 1792, 768, 4, 5),
    317: (4096, 4096, 1376, 5, 8),
}
# padded dims and task counts of TD-MPC2's task sets (the 30 dm_control tasks pad to 24 obs / 6 actions;
# Meta-World's 39 obs dims set mt80's width)
TASK_SETS = {"mt30": (30, 24, 6), "mt80": (80, 39, 6)}
BINS = 101


def dims(task_set: str, size: int) -> dict:
    enc, mlp, latent, n_enc, num_q = SIZES[size]
    if task_set == "mt30" and size == 19:
        latent = 512
    T, O, A = TASK_SETS[task_set]
    D = 96 if task_set == "mt80" or size in (1, 317) else 64
    return dict(T=T, O=O, A=A, D=D, L=latent, enc=enc, mlp=mlp, n_enc=n_enc, K=num_q)


def shapes(d: dict) -> dict[str, tuple]:
    """Every parameter of TD-MPC2's multitask state-based WorldModel, current key layout."""
    s = {"_task_emb.weight": (d["T"], d["D"])}

    def normed(prefix, i, n_in, n_out, lead=()):
        s.update(
            {
                f"{prefix}.{i}.weight": lead + (n_out, n_in),
                f"{prefix}.{i}.bias": lead + (n_out,),
                f"{prefix}.{i}.ln.weight": lead + (n_out,),
                f"{prefix}.{i}.ln.bias": lead + (n_out,),
            }
        )

    def plain(prefix, i, n_in, n_out, lead=()):
        s.update({f"{prefix}.{i}.weight": lead + (n_out, n_in), f"{prefix}.{i}.bias": lead + (n_out,)})

    enc_dims = [d["O"] + d["D"]] + [d["enc"]] * max(d["n_enc"] - 1, 1) + [d["L"]]
    for i in range(len(enc_dims) - 1):
        normed("_encoder.state", i, enc_dims[i], enc_dims[i + 1])
    zea = d["L"] + d["D"] + d["A"]
    for head, n_in in (("_dynamics", zea), ("_reward", zea), ("_pi", d["L"] + d["D"])):
        normed(head, 0, n_in, d["mlp"])
        normed(head, 1, d["mlp"], d["mlp"])
    normed("_dynamics", 2, d["mlp"], d["L"])
    plain("_reward", 2, d["mlp"], BINS)
    plain("_pi", 2, d["mlp"], 2 * d["A"])
    for prefix in ("_Qs.params", "_target_Qs_params"):
        normed(prefix, 0, zea, d["mlp"], (d["K"],))
        normed(prefix, 1, d["mlp"], d["mlp"], (d["K"],))
        plain(prefix, 2, d["mlp"], BINS, (d["K"],))
    return s


def masks_from_dims(action_dims: list[int], A: int) -> torch.Tensor:
    m = torch.zeros(len(action_dims), A)
    for i, n in enumerate(action_dims):
        m[i, :n] = 1.0
    return m


def current_layout(d: dict, action_dims: list[int], seed: int = 0, device: str = "cpu") -> dict:
    """{"model": state_dict} as TD-MPC2 saves it today, random weights (device="meta": shapes only)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes(d).items():
        if device == "meta":
            state[key] = torch.empty(shape, device="meta")
            continue
        x = torch.randn(shape, generator=g)
        if key.endswith("ln.weight"):
            x = 1.0 + 0.2 * x
        elif key == "_task_emb.weight":
            x = 0.2 * x  # norms ~2: the max-norm-1 lookup has to renormalise
        elif key.endswith("bias"):
            x = 0.1 * x
        else:
            x = x / shape[-1] ** 0.5 * 1.5  # large enough that every input column matters
        state[key] = x
    for key in [k for k in state if k.startswith("_Qs.params.")]:
        state["_detach_Qs_params." + key[len("_Qs.params.") :]] = state[key]
    for prefix in ("_Qs.params.", "_detach_Qs_params.", "_target_Qs_params."):
        state[prefix + "__batch_size"] = torch.Size([d["K"]])
        state[prefix + "__device"] = torch.device("cuda:0")
    state["_action_masks"] = masks_from_dims(action_dims, d["A"])
    state["log_std_min"] = torch.tensor(-10.0)
    state["log_std_dif"] = torch.tensor(12.0)
    return {"model": state}


def older_layout(current: dict) -> dict:
    """The same weights in TD-MPC2's earlier layout: flat Q parameter lists, no masks/log-std buffers."""
    names = ("weight", "bias", "ln.weight", "ln.bias")
    out = {}
    for key, value in current["model"].items():
        for src, dst in (("_Qs.params.", "_Qs.params."), ("_target_Qs_params.", "_target_Qs.params.")):
            if key.startswith(src):
                layer, _, name = key[len(src) :].partition(".")
                if name in names:  # TensorDict metadata (__batch_size, __device) did not exist then
                    out[f"{dst}{4 * int(layer) + names.index(name)}"] = value
                break
        else:
            if not key.startswith("_detach_Qs_params.") and key not in ("_action_masks", "log_std_min", "log_std_dif"):
                out[key] = value
    return {"model": out}


# -- an independent forward pass over the raw tensors ----------------------------------------------------
def _linear(p, prefix, x, lead=None):
    w, b = p[prefix + ".weight"], p[prefix + ".bias"]
    if lead is None:
        return x @ w.T + b
    return torch.einsum("...i,oi->...o", x, w[lead]) + b[lead]


def _ln_mish(p, prefix, x, lead=None):
    w, b = p[prefix + ".ln.weight"], p[prefix + ".ln.bias"]
    if lead is not None:
        w, b = w[lead], b[lead]
    return F.mish(F.layer_norm(x, x.shape[-1:], w, b))


def _simnorm(x):
    return torch.softmax(x.view(*x.shape[:-1], -1, 8), -1).view(x.shape)


def _mlp(p, prefix, x, n_layers, out="plain", lead=None):
    for i in range(n_layers - 1):
        x = _ln_mish(p, f"{prefix}.{i}", _linear(p, f"{prefix}.{i}", x, lead), lead)
    last = f"{prefix}.{n_layers - 1}"
    x = _linear(p, last, x, lead)
    if out == "simnorm":
        w, b = p[last + ".ln.weight"], p[last + ".ln.bias"]
        x = _simnorm(F.layer_norm(x, x.shape[-1:], w, b))
    return x


def reference_forward(model_state: dict, obs: torch.Tensor, action: torch.Tensor, task: torch.Tensor) -> dict:
    """TD-MPC2's eval-mode outputs for obs [B, O], action [B, A], task [B] (current-layout raw tensors)."""
    p = model_state
    emb = p["_task_emb.weight"][task]
    emb = emb * torch.clamp(1.0 / emb.norm(dim=-1, keepdim=True), max=1.0)  # nn.Embedding(max_norm=1)
    n_enc = len([k for k in p if k.startswith("_encoder.state.") and k.endswith(".ln.bias")])
    z = _mlp(p, "_encoder.state", torch.cat([obs, emb], -1), n_enc, out="simnorm")
    zea = torch.cat([z, emb, action], -1)  # TD-MPC2 order: latent, task embedding, action
    out = {"z": z, "next": _mlp(p, "_dynamics", zea, 3, out="simnorm"), "reward": _mlp(p, "_reward", zea, 3)}
    K = p["_Qs.params.0.weight"].shape[0]
    out["q"] = torch.stack([_mlp(p, "_Qs.params", zea, 3, lead=k) for k in range(K)])
    out["target_q"] = torch.stack([_mlp(p, "_target_Qs_params", zea, 3, lead=k) for k in range(K)])
    mu = _mlp(p, "_pi", torch.cat([z, emb], -1), 3).chunk(2, -1)[0]
    out["pi_mean"] = torch.tanh(mu * p["_action_masks"][task])
    return out
