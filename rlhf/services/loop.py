"""The closed loop: a loop-mode campaign's round fills up (or an admin closes it) -> training data -> reward
model (when the algorithm or the pairing needs one) -> policy training -> evaluation and gate -> the next round,
generated from the promoted policy, opens.

Each turn is a LoopIteration keyed by the round it consumes; ``stage`` names the next step. A step claims the
iteration under its row lock and checks the stage, links the run it creates to the iteration before running it,
and advances the stage only after the run succeeded; so a re-delivered task never repeats a finished step, and
a step whose worker died runs its (linked) run again. Steps are chained as Celery tasks: ``loop_data`` on the
CPU queue, ``gpu_loop_step`` on the GPU queue. Admins can run any step by hand (``loop_step_now``).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count

from labeling.errors import Conflict, ValidationError
from labeling.events import send_event_on_commit
from labeling.models import Campaign, Judgment, Prompt, Round
from labeling.services.campaigns import round_close, round_create, round_current

from ..locks import iteration_lock
from ..models import BaseModel, LoopConfig, LoopIteration, PolicyVersion, RewardModelVersion, TrainingRun
from .data import build_preference_data
from .generation import generation_run_create, prompt_as_chat, prompts_for_round
from .registry import policy_base_version, policy_promote
from .runs import run_create, run_dir

log = logging.getLogger(__name__)

Stage = LoopIteration.Stage
CONFIG_FIELDS = frozenset({
    "enabled", "base_model", "reward_backbone", "algorithm", "judgments_per_round", "prompts_per_round",
    "responses_per_prompt", "generation", "pairing", "gate", "train_params", "reward_params", "eval_prompts",
    "judge", "max_rounds",
})
DEFAULT_TRAIN = {"dpo": {"max_steps": 40, "lr": 1e-4, "beta": 0.1}, "grpo": {"max_steps": 40},
                 "rloo": {"max_steps": 40}, "ppo": {"max_steps": 20}}


def loop_root() -> Path:
    return Path(settings.STORAGE_DIR) / "loop"


# --- configuration ------------------------------------------------------------------------------------------

def _config_check(config: LoopConfig) -> None:
    if config.algorithm not in LoopConfig.Algorithm.values:
        raise ValidationError(f"algorithm must be one of {LoopConfig.Algorithm.values}", field="algorithm")
    if config.pairing not in LoopConfig.Pairing.values:
        raise ValidationError(f"pairing must be one of {LoopConfig.Pairing.values}", field="pairing")
    if config.responses_per_prompt < 2:
        raise ValidationError("responses_per_prompt must be at least 2", field="responses_per_prompt")
    if config.judgments_per_round < 1 or config.prompts_per_round < 1:
        raise ValidationError("judgments_per_round and prompts_per_round must be at least 1", field="judgments_per_round")
    if config.needs_reward_model and config.reward_backbone is None:
        raise ValidationError(
            f"{config.algorithm} with {config.pairing} pairing needs a reward backbone", field="reward_backbone"
        )
    if config.judge:
        from ..judges import judge_from_spec

        if "reward_model" not in config.judge:
            try:
                judge_from_spec(config.judge)
            except ValueError as exc:
                raise ValidationError(str(exc), field="judge") from None
    for name in ("generation", "train_params", "reward_params", "judge"):
        if not isinstance(getattr(config, name), dict):
            raise ValidationError(f"{name} must be an object", field=name)


@transaction.atomic
def loop_configure(*, campaign: Campaign, **fields) -> LoopConfig:
    """Create or change a campaign's loop configuration. ``base_model`` / ``reward_backbone`` are BaseModel
    rows (or ids)."""
    unknown = set(fields) - CONFIG_FIELDS
    if unknown:
        raise ValidationError(f"unknown loop fields: {sorted(unknown)}", field=sorted(unknown)[0])
    for key in ("base_model", "reward_backbone"):
        if isinstance(fields.get(key), int):
            found = BaseModel.objects.filter(pk=fields[key]).first()
            if found is None:
                raise ValidationError(f"base model {fields[key]} not found", field=key)
            fields[key] = found
    config = LoopConfig.objects.select_for_update().filter(campaign=campaign).first()
    if config is None:
        if "base_model" not in fields:
            raise ValidationError("base_model is required", field="base_model")
        config = LoopConfig(campaign=campaign)
    for key, value in fields.items():
        setattr(config, key, value)
    _config_check(config)
    config.save()
    send_event_on_commit(campaign_id=campaign.pk, type="loop.configured", payload={"fields": sorted(fields)})
    return config


def _config(campaign_id: int) -> LoopConfig:
    config = LoopConfig.objects.select_related("base_model", "reward_backbone", "current_policy").filter(
        campaign_id=campaign_id
    ).first()
    if config is None:
        raise Conflict(f"campaign {campaign_id} has no loop configuration", field="loop")
    return config


def current_policy(config: LoopConfig) -> PolicyVersion:
    if config.current_policy is not None:
        return config.current_policy
    base = policy_base_version(campaign=config.campaign, base=config.base_model)
    LoopConfig.objects.filter(pk=config.pk).update(current_policy=base)
    config.current_policy = base
    return base


# --- start and triggers -------------------------------------------------------------------------------------

@transaction.atomic
def loop_start(*, campaign: Campaign, created_by: AbstractBaseUser | None = None) -> TrainingRun:
    """Turn loop mode on and fill the campaign's open round from the current policy (the base model at first).
    The round gets ``judgments_per_round`` as its target; reaching it starts the first iteration."""
    config = LoopConfig.objects.select_for_update().filter(campaign=campaign).first()
    if config is None:
        raise Conflict(f"campaign {campaign.pk} has no loop configuration: configure it first", field="loop")
    config.enabled = True
    config.save(update_fields=["enabled", "updated_at"])
    policy = current_policy(config)
    rnd = round_current(campaign=campaign)
    if rnd.items.exists() or TrainingRun.objects.filter(round=rnd, kind=TrainingRun.Kind.GENERATE).exclude(
        status__in=[TrainingRun.Status.FAILED, TrainingRun.Status.CANCELLED]
    ).exists():
        raise Conflict(f"round {rnd.number} already has items or a generation run: close it to start a new one")
    Round.objects.filter(pk=rnd.pk).update(target_judgments=config.judgments_per_round)
    return _generate_round(config=config, rnd=rnd, policy=policy, created_by=created_by, enqueue=True)


def _generate_round(*, config: LoopConfig, rnd: Round, policy: PolicyVersion, created_by=None,
                    enqueue: bool) -> TrainingRun:
    from .runs import run_enqueue

    reward = None
    if config.pairing == LoopConfig.Pairing.UNCERTAIN:
        reward = RewardModelVersion.objects.filter(campaign=config.campaign).order_by("-number").first()
    prompts = prompts_for_round(campaign=config.campaign, n=config.prompts_per_round,
                                seed=int(config.generation.get("seed", 0)) + rnd.number)
    generation = {**config.generation, "seed": int(config.generation.get("seed", 0)) + rnd.number}
    run = generation_run_create(
        campaign=config.campaign, round=rnd, policy=policy, prompts=prompts,
        n_per_prompt=config.responses_per_prompt, generation=generation,
        pairing=config.pairing if reward is not None else "random", reward_model=reward, created_by=created_by,
    )
    if enqueue:
        run_enqueue(run=run)
    return run


def on_judgment_recorded(campaign_id: int, payload: dict) -> None:
    """Subscribed to ``judgment.recorded`` (see apps.py); runs after the judgment committed and only enqueues."""
    from .. import tasks

    round_id = payload.get("round")
    # Only a round with a target can close itself; the queue says whether this one has one ("round_target"),
    # so the usual judgment (no loop, no target) costs no query here. Without the key, check as before.
    if not round_id or ("round_target" in payload and not payload["round_target"]):
        return
    if not LoopConfig.objects.filter(campaign_id=campaign_id, enabled=True).exists():
        return
    target = Round.objects.filter(pk=round_id, status=Round.Status.OPEN).values_list("target_judgments", flat=True).first()
    # One cheap count here saves a task per judgment; the task re-checks under the round's lock.
    if target and Judgment.objects.filter(round_id=round_id).count() >= target:
        tasks.loop_round_check.delay(round_id)


def on_round_closed(campaign_id: int, payload: dict) -> None:
    from .. import tasks

    if payload.get("round") and LoopConfig.objects.filter(campaign_id=campaign_id, enabled=True).exists():
        tasks.loop_iteration_start.delay(payload["round"])


def loop_round_check(*, round_id: int) -> bool:
    """Close the round when it reached its target number of judgments; True if it closed it now."""
    with transaction.atomic():
        rnd = Round.objects.select_for_update().filter(pk=round_id).first()
        if rnd is None or rnd.status != Round.Status.OPEN or not rnd.target_judgments:
            return False
        if not LoopConfig.objects.filter(campaign_id=rnd.campaign_id, enabled=True).exists():
            return False
        if Judgment.objects.filter(round=rnd).count() < rnd.target_judgments:
            return False
        round_close(round=rnd)  # its round.closed event starts the iteration (on_round_closed)
    return True


def iteration_start(*, round_id: int) -> LoopIteration | None:
    """The loop turn for a closed round (created once; later calls return it). None when the campaign is not in
    loop mode, the round is open or has no judgments, or ``max_rounds`` is reached."""
    with transaction.atomic():
        rnd = Round.objects.select_for_update().filter(pk=round_id).first()
        if rnd is None or rnd.status != Round.Status.CLOSED or rnd.purpose == Round.Purpose.EVALUATION:
            return None  # an evaluation round (human eval between versions) is held out: never trained on
        config = LoopConfig.objects.filter(campaign_id=rnd.campaign_id, enabled=True).first()
        if config is None:
            return None
        existing = LoopIteration.objects.filter(round=rnd).first()
        if existing is not None:
            return existing
        if config.max_rounds and rnd.number >= config.max_rounds:
            send_event_on_commit(campaign_id=rnd.campaign_id, type="loop.finished", payload={"round": rnd.pk})
            return None
        if not Judgment.objects.filter(round=rnd).exists():
            return None
        iteration = LoopIteration.objects.create(
            campaign_id=rnd.campaign_id, round=rnd, stage=Stage.DATA, parent_policy=current_policy(config)
        )
        send_event_on_commit(campaign_id=rnd.campaign_id, type="loop.iteration",
                             payload={"iteration": iteration.pk, "stage": iteration.stage})
        _enqueue_stage(iteration)
    return iteration


def _enqueue_stage(iteration: LoopIteration) -> None:
    from .. import tasks

    iteration_id, stage = iteration.pk, iteration.stage
    if stage == Stage.DATA:
        transaction.on_commit(lambda: tasks.loop_data.delay(iteration_id))
    elif stage in (Stage.REWARD, Stage.TRAIN, Stage.EVALUATE, Stage.GENERATE):
        transaction.on_commit(lambda: tasks.gpu_loop_step.delay(iteration_id, stage))


def _advance(iteration: LoopIteration, stage: str, **fields) -> LoopIteration:
    with transaction.atomic():
        locked = iteration_lock(iteration.pk).get()
        locked.error = ""
        for key, value in fields.items():
            setattr(locked, key, value)
        locked.stage = stage
        locked.save()
        send_event_on_commit(campaign_id=locked.campaign_id, type="loop.iteration",
                             payload={"iteration": locked.pk, "stage": stage})
        if stage not in (Stage.DONE, Stage.FAILED):
            _enqueue_stage(locked)
    return locked


def _fail(iteration: LoopIteration, error: str) -> LoopIteration:
    log.warning("loop iteration %s failed: %s", iteration.pk, error)
    return _advance(iteration, Stage.FAILED, error=error[-4000:])


def _claim(iteration_id: int, stage: str) -> LoopIteration | None:
    with transaction.atomic():
        it = iteration_lock(iteration_id).first()
        if it is None or it.stage != stage:
            return None
        return it


# --- steps --------------------------------------------------------------------------------------------------

def step_data(*, iteration_id: int) -> LoopIteration | None:
    """Training data from the judgments: the closed round's pairs for DPO (on-policy, continuing from the
    parent), every round so far for the reward model (with a 10% held-out split by prompt)."""
    it = _claim(iteration_id, Stage.DATA)
    if it is None:
        return None
    config = _config(it.campaign_id)
    campaign = config.campaign
    folder = loop_root() / str(it.pk)
    policy_data = build_preference_data(campaign=campaign, round_ids=[it.round_id], folder=folder / "policy")
    if policy_data.rows == 0:
        return _fail(it, f"round {it.round.number} gave no preference pairs (only ties or both-bad?)")
    if config.needs_reward_model:
        upto = list(Round.objects.filter(campaign=campaign, number__lte=it.round.number)
                    .exclude(purpose=Round.Purpose.EVALUATION).values_list("pk", flat=True))
        build_preference_data(campaign=campaign, round_ids=upto, folder=folder / "reward", eval_fraction=0.1,
                              seed=it.round.number)
    nxt = Stage.REWARD if config.needs_reward_model else Stage.TRAIN
    return _advance(it, nxt, data_path=str(policy_data.path), data_sha256=policy_data.sha256, pairs=policy_data.rows,
                    snapshot_id=_snapshot_of(campaign, it.round))


def _snapshot_of(campaign: Campaign, rnd: Round) -> int | None:
    """Freeze the round's judgments as a labeling snapshot (immutable, content-hashed) for the lineage, when the
    snapshot service is available. The training file above stays the data of record (its sha256 is on the run);
    a snapshot that cannot be made is logged, never a reason to stop the loop."""
    try:
        from labeling.services.snapshots import snapshot_create
    except ImportError:
        return None
    try:
        with transaction.atomic():
            return snapshot_create(campaign=campaign, created_by=None, round_ids=[rnd.pk]).pk
    except Exception:  # noqa: BLE001 - see the docstring
        log.warning("could not snapshot round %s of campaign %s", rnd.pk, campaign.pk, exc_info=True)
        return None


def _stage_run(iteration_id: int, attr: str, create) -> TrainingRun | None:
    """The iteration's run for this stage, created and linked (under the iteration's lock) on first call."""
    with transaction.atomic():
        it = iteration_lock(iteration_id).first()
        run = getattr(it, attr)
        if run is None:
            run = create(it)
            setattr(it, attr, run)
            it.save(update_fields=[attr, "updated_at"])
        return run


def _run_stage(iteration_id: int, stage: str, attr: str, create) -> tuple[LoopIteration | None, TrainingRun | None]:
    from .execution import execute_run

    it = _claim(iteration_id, stage)
    if it is None:
        return None, None
    run = _stage_run(iteration_id, attr, create)
    if not run.finished:
        run = execute_run(run.pk)
    it.refresh_from_db()
    if run.status != TrainingRun.Status.SUCCEEDED:
        _fail(it, f"{stage}: run {run.pk} {run.status}: {run.error[-1000:]}")
        return None, run
    return it, run


def step_reward(*, iteration_id: int) -> LoopIteration | None:
    def create(it: LoopIteration) -> TrainingRun:
        config = _config(it.campaign_id)
        folder = Path(it.data_path).parent.parent / "reward"
        eval_file = folder / "eval.jsonl"
        spec = {"model": config.reward_backbone.source, "train_file": str(folder / "train.jsonl"),
                "eval_file": str(eval_file) if eval_file.is_file() else None, **config.reward_params}
        from .runs import file_sha256

        return run_create(kind=TrainingRun.Kind.REWARD, spec=spec, campaign=config.campaign, round=it.round,
                          data_path=str(folder / "train.jsonl"), data_sha256=file_sha256(folder / "train.jsonl"))

    it, run = _run_stage(iteration_id, Stage.REWARD, "reward_run", create)
    if it is None:
        return None
    return _advance(it, Stage.TRAIN)


def step_train(*, iteration_id: int) -> LoopIteration | None:
    def create(it: LoopIteration) -> TrainingRun:
        config = _config(it.campaign_id)
        parent = it.parent_policy or current_policy(config)
        params = {**DEFAULT_TRAIN[config.algorithm], **config.train_params}
        reward = it.reward_run.reward_version if it.reward_run_id else None
        if config.algorithm == LoopConfig.Algorithm.DPO:
            spec = {"model": parent.base.source, "adapter": parent.adapter_dir or None,
                    "train_file": it.data_path, **params}
        else:
            # The online specs take no starting adapter: each round trains a fresh adapter on the base against
            # the reward model, which has seen every round's judgments so far.
            prompts_file = loop_root() / str(it.pk) / "prompts.jsonl"
            prompts = Prompt.objects.filter(items__round=it.round).distinct().order_by("id")
            prompts_file.write_text("".join(json.dumps({"prompt": prompt_as_chat(p)}) + "\n" for p in prompts))
            gen = {k: config.generation[k] for k in ("temperature", "top_p", "max_new_tokens") if k in config.generation}
            spec = {"model": parent.base.source, "prompts_file": str(prompts_file),
                    "reward_model": reward.model_dir if reward else None, **gen, **params}
        return run_create(kind=config.algorithm, spec=spec, campaign=config.campaign, round=it.round, policy=parent,
                          reward_model=reward, data_path=it.data_path, data_sha256=it.data_sha256)

    it, run = _run_stage(iteration_id, Stage.TRAIN, "train_run", create)
    if it is None:
        return None
    return _advance(it, Stage.EVALUATE, policy=run.policy_version)


def _eval_prompts(config: LoopConfig, it: LoopIteration) -> list[Prompt]:
    held = list(Prompt.objects.filter(campaign=config.campaign, split__in=[Prompt.Split.TEST, Prompt.Split.VALIDATION])
                .order_by("id")[: config.eval_prompts])
    if held:
        return held
    # No held-out split: the round's prompts (documented: then the win-rate is measured on training prompts).
    return list(Prompt.objects.filter(items__round=it.round).distinct().order_by("id")[: config.eval_prompts])


def step_evaluate(*, iteration_id: int) -> LoopIteration | None:
    def create(it: LoopIteration) -> TrainingRun:
        config = _config(it.campaign_id)
        parent, new = it.parent_policy, it.policy
        reward = it.reward_run.reward_version if it.reward_run_id else None
        run = run_create(kind=TrainingRun.Kind.EVALUATE, spec={}, campaign=config.campaign, round=it.round,
                         policy=new, reward_model=reward)
        folder = run_dir(run.pk)
        folder.mkdir(parents=True, exist_ok=True)
        prompts_file = folder / "prompts.jsonl"
        prompts_file.write_text("".join(json.dumps({"prompt": prompt_as_chat(p)}) + "\n"
                                        for p in _eval_prompts(config, it)))
        gen = {k: config.generation[k] for k in ("temperature", "top_p", "max_new_tokens", "max_length", "batch_size")
               if k in config.generation}
        run.spec = {
            "kind": "evaluate", "output_dir": str(folder), "model": new.base.source, "adapter": new.adapter_dir or None,
            "parent_adapter": parent.adapter_dir or None, "prompts_file": str(prompts_file),
            "reward_model": reward.model_dir if reward else None, "judge": config.judge or None,
            "seed": int(config.generation.get("seed", 0)) + 1000 + it.round.number, **gen,
        }
        run.save(update_fields=["spec"])
        return run

    it, run = _run_stage(iteration_id, Stage.EVALUATE, "eval_run", create)
    if it is None:
        return None
    from ..evaluation import beats_parent

    config = _config(it.campaign_id)
    ok, reason = beats_parent(run.metrics)
    promoted = ok or not config.gate
    policy_promote(policy=it.policy, metrics={**run.metrics, "gate": {"passed": ok, "reason": reason,
                                                                       "gate_on": config.gate}},
                   promoted=promoted)
    return _advance(it, Stage.GENERATE)


def step_generate(*, iteration_id: int) -> LoopIteration | None:
    def create(it: LoopIteration) -> TrainingRun:
        config = _config(it.campaign_id)
        rnd = it.next_round or round_create(campaign=config.campaign, target_judgments=config.judgments_per_round)
        if it.next_round is None:
            it.next_round = rnd
            it.save(update_fields=["next_round"])
        return _generate_round(config=config, rnd=rnd, policy=current_policy(config), enqueue=False)

    it, run = _run_stage(iteration_id, Stage.GENERATE, "generate_run", create)
    if it is None:
        return None
    it = _advance(it, Stage.DONE)
    send_event_on_commit(campaign_id=it.campaign_id, type="loop.round_opened",
                         payload={"round": it.next_round_id, "policy": run.policy_id})
    return it


STEPS = {Stage.DATA: step_data, Stage.REWARD: step_reward, Stage.TRAIN: step_train, Stage.EVALUATE: step_evaluate,
         Stage.GENERATE: step_generate}


@transaction.atomic
def loop_step_now(*, campaign: Campaign, iteration: LoopIteration | None = None, round: Round | None = None) -> dict:
    """Admin: run the loop by hand. With a round: close it and start its iteration. With a failed iteration:
    retry its current step (the failed step's run is replaced by a new one). Otherwise: re-enqueue the newest
    unfinished iteration's step."""
    if round is not None:
        if round.campaign_id != campaign.pk:
            raise ValidationError(f"round {round.pk} is not in campaign {campaign.pk}", field="round")
        was_open = round.status == Round.Status.OPEN
        round_close(round=round)  # an open round's round.closed event starts its iteration (on_round_closed)
        if not was_open:
            from .. import tasks

            rid = round.pk
            transaction.on_commit(lambda: tasks.loop_iteration_start.delay(rid))
        return {"queued": "iteration_start", "round": round.pk}
    qs = LoopIteration.objects.filter(campaign=campaign)
    iteration = iteration or qs.exclude(stage=Stage.DONE).order_by("-id").first()
    if iteration is None:
        raise Conflict("no unfinished loop iteration: pass a round to close it and start one", field="round")
    it = iteration_lock(iteration.pk).get()
    if it.stage == Stage.FAILED:
        stage = _failed_stage(it)
        it.stage = stage
        attr = {Stage.REWARD: "reward_run", Stage.TRAIN: "train_run", Stage.EVALUATE: "eval_run",
                Stage.GENERATE: "generate_run"}.get(stage)
        if attr:
            setattr(it, attr, None)
        it.error = ""
        it.save()
    _enqueue_stage(it)
    return {"queued": it.stage, "iteration": it.pk}


def _failed_stage(it: LoopIteration) -> str:
    if not it.data_sha256:
        return Stage.DATA
    for stage, attr in ((Stage.REWARD, "reward_run"), (Stage.TRAIN, "train_run"), (Stage.EVALUATE, "eval_run"),
                        (Stage.GENERATE, "generate_run")):
        run = getattr(it, attr)
        if run is not None and run.status != TrainingRun.Status.SUCCEEDED:
            return stage
    prefix = it.error.split(":", 1)[0]
    return prefix if prefix in Stage.values else Stage.DATA


def loop_status(*, campaign: Campaign) -> dict:
    config = LoopConfig.objects.filter(campaign=campaign).first()
    iterations = list(LoopIteration.objects.filter(campaign=campaign).order_by("-id")[:20]
                      .values("id", "round_id", "stage", "policy_id", "next_round_id", "error", "pairs"))
    rounds = list(Round.objects.filter(campaign=campaign).annotate(n=Count("judgments")).values(
        "id", "number", "status", "target_judgments", "n"))
    return {"enabled": bool(config and config.enabled),
            "current_policy": config.current_policy_id if config else None,
            "iterations": iterations, "rounds": rounds}
