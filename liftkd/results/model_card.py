"""The model card of an exported student: the facts a hub user looks for, rounded, each
number beside its standard error, how to load it, what it is for and where it falls short.

``job_card`` gathers them from a finished sweep job's results, ``backbone_card`` from the DiT or
latent path's (notebooks 06 and 07); ``card_text`` writes the
``README.md`` (a hub front matter, a table, a loading snippet for the folder's layout, intended
use and limits).
"""

from __future__ import annotations


def _show(value) -> str:
    """A card's number as a person reads it: 4 significant digits, thousands grouped."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.4g}"


_LOAD = {
    "unet": [
        "from diffusers import DDIMPipeline",
        "",
        'pipe = DDIMPipeline.from_pretrained("{folder}", trust_remote_code=True)',
        "images = pipe(batch_size=16, num_inference_steps=50).images",
    ],
    "transformer": [
        "import torch",
        "from diffusers import DDIMScheduler, DiTTransformer2DModel",
        "",
        'model = DiTTransformer2DModel.from_pretrained("{folder}", subfolder="transformer")',
        'scheduler = DDIMScheduler.from_pretrained("{folder}", subfolder="scheduler")',
        "classes, guidance = {classes}, {guidance}  # guidance > 1 also asks the null class",
        "labels = torch.arange(16) % classes",
        "null = torch.full_like(labels, model.config.num_embeds_ada_norm)",
        "c, side = model.config.in_channels, model.config.sample_size",
        "x = torch.randn(16, c, side, side, generator=torch.Generator().manual_seed(0))",
        "scheduler.set_timesteps(50)",
        "with torch.no_grad():",
        "    for t in scheduler.timesteps:",
        "        eps = model(x, timestep=t.expand(16), class_labels=labels).sample[:, :c]",
        "        if guidance != 1:  # classifier-free guidance, as the card's FID was measured",
        "            free = model(x, timestep=t.expand(16), class_labels=null).sample[:, :c]",
        "            eps = free + guidance * (eps - free)",
        "        x = scheduler.step(eps, t, x).prev_sample",
        "images = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # (16, c, side, side)",
    ],
    "latent": [
        "from diffusers import LDMPipeline",
        "",
        'pipe = LDMPipeline.from_pretrained("{folder}")  # the U-Net and its autoencoder',
        "images = pipe(batch_size=16, num_inference_steps=50).images",
    ],
    "plain-unet": [
        "from diffusers import DDIMPipeline",
        "",
        'pipe = DDIMPipeline.from_pretrained("{folder}")',
        "images = pipe(batch_size=16, num_inference_steps=50).images",
    ],
    "liftkd": [
        "from liftkd.results.export import load_pipeline  # pip install liftkd: rebuilds the cut U-Net",
        "",
        'pipe = load_pipeline("{folder}")',
        "images = pipe(batch_size=16, num_inference_steps=50).images",
    ],
}


def card_text(card: dict, layout: str) -> str:
    """The README of an export: a front matter for the hub, the facts, how to load it, limits."""
    title = card.get("title", "A pruned diffusion student distilled with liftkd")
    lines = ["---", "library_name: diffusers", "tags: [diffusion, knowledge-distillation, pruning]"]
    lines += ["---", "", f"# {title}", ""]
    lines += [
        f"A pruned `{card.get('class', 'UNet2DModel')}` trained by knowledge distillation with "
        "liftkd, a reproduction of LIFT and PLACE (Han, Yeo, Yoo, CVPR 2026, arXiv 2605.19729).",
        "",
        "| | |",
        "|---|---|",
    ]
    skip = {"title", "folder", "class", "intended use", "limits", "guidance"}
    for key, value in card.items():
        if key in skip or key.endswith(" SE"):
            continue
        se = card.get(f"{key} SE")
        shown = _show(value) if se is None else f"{_show(value)} ± {_show(se)} (standard error)"
        lines.append(f"| {key} | {shown} |")
    folder = card.get("folder", "this folder")
    lines += ["", "## Load it", "", "```python"]
    shape = {"classes": card.get("classes", 1), "guidance": card.get("guidance", 1.0)}
    lines += [line.format(folder=folder, **shape) for line in _LOAD[layout]]
    lines += ["```", ""]
    for part in ("intended use", "limits"):
        if card.get(part):
            lines += [f"## {part.capitalize()}", "", card[part], ""]
    return "\n".join(lines)


def _recipe(t) -> str:
    return (
        f"{t.steps} KD steps, batch {t.batch_size}, {t.optimizer} lr {t.lr:g} to {t.lr_min:g} "
        f"after {t.warmup_steps} warm-up steps, EMA {t.ema_decay:g}, gradients clipped at "
        f"{t.grad_clip:g}"
    )


def _protocol(n, ddim_steps, features: str) -> str:
    return (
        f"{n} samples against the training images, DDIM {ddim_steps} steps (eta 0), on this "
        f"project's {features}; the standard error by a bootstrap over the samples"
    )


def _scores(row: dict, teacher: dict, protocol: str) -> dict:
    """The student's FID and the teacher's on the same protocol, each with its SE."""
    return {
        "FID": row["fid"],
        "FID SE": row.get("fid_se"),
        "teacher FID, same protocol": teacher["fid"],
        "teacher FID, same protocol SE": teacher.get("fid_se"),
        "FID protocol": protocol,
        "training status": row.get("status"),
    }


def _purpose(profile, data: str, features: str) -> dict:
    return {
        "intended use": (
            "Research: a student from liftkd's reproduction of LIFT and PLACE, for studying the "
            "knowledge distillation of pruned diffusion models and comparing its objectives "
            "under one protocol."
        ),
        "limits": (
            f"Trained on {data} on the {profile.name} profile: it draws only images like "
            "those, and at this scale its samples are far from a full-size model's. Its FID is "
            f"on this project's offline {features}, not Inception's: compare it only with FIDs "
            "of the same protocol, such as the teacher's above. Not evaluated for any use "
            "beyond research."
        ),
    }


def _data(profile) -> str:
    return f"{profile.data.name}, {profile.data.resolution}x{profile.data.resolution}"


def job_card(profile, job, row: dict, results: dict, meta: dict, costs: dict) -> dict:
    """The model card of one student of a finished sweep job: its FID with the standard error,
    on the protocol the teacher's FID beside it shares, the recipe, and what it is for."""
    ref = results["reference"]
    teacher = ref.get("teacher_final", ref["teacher"])  # scored like the students' final FID
    features = ref.get("features", "classifier features")
    n = row.get("n_final", ref.get("final_samples"))
    protocol = _protocol(n, ref["ddim_steps"], features)
    return {
        "title": f"{row['label']} student, {job.ratio:.0%} channel pruning ({profile.name} profile)",
        "objective": f"{row['label']} (spec {row['objective']})",
        "pruning ratio": job.ratio,
        "pruning criterion": results.get("criterion"),
        **costs,
        "teacher": (
            f"pretrained {profile.pretrained_teacher}"
            if profile.pretrained_teacher
            else f"trained here, {profile.teacher.steps} steps"
        ),
        "teacher parameters": results.get("teacher_params"),
        **_scores(row, teacher, protocol),
        "recipe": _recipe(job.train),
        "seed": job.seed,
        "commit": meta.get("git", {}).get("commit"),
        "data": _data(profile),
        **_purpose(profile, _data(profile), features),
    }


def backbone_card(profile, row: dict, results: dict, meta: dict, costs: dict, features: str):
    """The model card of one student of the DiT or latent path (notebook 06 or 07's results)."""
    dit = results["backbone"] == "dit"
    cfg = profile.dit_kd if dit else profile.latent
    ref, student = results["reference"], results["student"]
    kind = "DiT" if dit else "latent U-Net"
    if dit:
        cut = f"blocks {student['keep']} of the teacher's {student['teacher_blocks']} kept"
        shape = {"classes": student.get("classes", 1), "guidance": cfg.guidance}
    else:
        cut = f"removed: {', '.join(student['removed'])}"
        shape = {"latent scale": student["scale"]}
    protocol = _protocol(row["n_final"], ref["ddim_steps"], features)
    if dit and cfg.guidance != 1:
        protocol += f"; classifier-free guidance {cfg.guidance:g}"
    return {
        "title": f"{row['label']} {kind} student ({profile.name} profile)",
        "objective": f"{row['label']} (spec {row['objective']})",
        "student": cut,
        **costs,
        "teacher": f"a {kind} trained here, {cfg.teacher.steps} steps",
        "teacher parameters": ref.get("teacher_params"),
        **_scores(row, ref["teacher_final"], protocol),
        **shape,
        "recipe": _recipe(cfg.kd.train),
        "seed": row["seed"],
        "commit": meta.get("git", {}).get("commit"),
        "data": _data(profile),
        **_purpose(profile, _data(profile), features),
    }
