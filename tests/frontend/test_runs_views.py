"""The training pages through Django's test client: who may open them, what they show (progress, curves from
the run's progress history, spec and metric diffs, reward accuracy beside the human ceiling, policy lineage),
hostile run texts rendered inert, and list pages whose query count does not grow with the number of runs."""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from labeling.models import Role
from labeling.services.queue import assignment_next, judgment_record
from labeling.services.validation import JudgmentInput
from rlhf.models import TrainingRun
from rlhf.services import runs as run_services
from rlhf.services.registry import base_model_get_or_create, policy_base_version, policy_promote
from tests.factories import UserFactory, member

from .conftest import add_items, make_campaign, make_run

pytestmark = pytest.mark.django_db

XSS = "<script>window.__xss=1</script>"
XSS_IMG = '<img src=x onerror="window.__xss=1">'
PAGES = ["runs/", "runs/data/", "runs/{run}/", "runs/compare/?run={run}&run={other}"]


@pytest.fixture(autouse=True)
def storage(tmp_path, settings):
    """Each test's run folders (progress files, artifacts) in its own directory."""
    settings.STORAGE_DIR = tmp_path / "storage"
    settings.STORAGE_DIR.mkdir()
    return settings.STORAGE_DIR


def client_as(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def url(campaign, page=""):
    return f"/campaigns/{campaign.pk}/{page}"


@pytest.fixture
def world():
    campaign, admin = make_campaign()
    other, _ = make_campaign(name="Other campaign")
    run = make_run(campaign, history=[(1, 0.9), (2, 0.7)])
    second = make_run(campaign, kind="reward", history=[(1, 0.69), (2, 0.6)], lr=1e-3)
    return {"campaign": campaign, "other": other, "admin": admin, "run": run, "second": second,
            "foreign": make_run(other, history=[(1, 1.0)]),
            "annotator": member(campaign, Role.ANNOTATOR), "researcher": member(campaign, Role.RESEARCHER),
            "stranger": UserFactory()}


def pages(world):
    ids = {"run": world["run"].pk, "other": world["second"].pk}
    return [url(world["campaign"], p.format(**ids)) for p in PAGES]


def test_admins_and_researchers_open_the_training_pages(world):
    for who in ("admin", "researcher"):
        client = client_as(world[who])
        for path in pages(world):
            response = client.get(path)
            assert response.status_code == 200, (who, path)
            if not path.endswith("data/"):
                assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_annotators_get_403_and_outsiders_404_on_the_training_pages(world, client):
    for path in pages(world):
        assert client_as(world["annotator"]).get(path).status_code == 403, path
        assert client_as(world["stranger"]).get(path).status_code == 404, path
        assert client.get(path).status_code == 302, path  # anonymous: to the login page


def test_a_run_of_another_campaign_is_not_found_there(world):
    client = client_as(world["admin"])
    foreign = world["foreign"].pk
    assert client.get(url(world["campaign"], f"runs/{foreign}/")).status_code == 404
    response = client.get(url(world["campaign"], f"runs/compare/?run={world['run'].pk}&run={foreign}"))
    assert response.status_code == 404
    assert f"{foreign} not found in campaign {world['campaign'].pk}" in response.content.decode()


@pytest.mark.parametrize(("query", "message"), [
    ("", "choose 2 to 4 runs to compare (got 0)"),
    ("run={a}", "choose 2 to 4 runs to compare (got 1)"),
    ("run={a}&run={a}", "choose 2 to 4 runs to compare (got 1)"),
    ("run={a}&run=x1", "run: &#x27;x1&#x27; is not a run id"),
    ("run=1&run=2&run=3&run=4&run=5", "choose 2 to 4 runs to compare (got 5)"),
])
def test_compare_refuses_a_bad_selection_with_a_400_saying_why(world, query, message):
    response = client_as(world["researcher"]).get(url(world["campaign"], "runs/compare/?" + query.format(a=world["run"].pk)))
    assert response.status_code == 400
    assert message in response.content.decode()


def test_runs_page_lists_runs_with_progress_loss_lineage_and_output(world):
    campaign = world["campaign"]
    base = base_model_get_or_create(name="tiny", source="tiny-model")
    v0 = policy_base_version(campaign=campaign, base=base)
    child = make_run(campaign, policy=v0, history=[(1, 0.5)])
    running = make_run(campaign, history=[(3, 0.42)], finish=False)
    run_services.run_record_progress(run_id=running.pk, record={"step": 3, "total": 10, "loss": 0.42, "eta_s": 17})
    body = client_as(world["researcher"]).get(url(campaign, "runs/")).content.decode()
    row = re.search(rf'<tr data-run="{running.pk}">(.*?)</tr>', body, re.S).group(1)
    assert 'max="10" value="3"' in row and "3 / 10" in row and "0.4200" in row and "17 s" in row
    assert 'run-running' in row
    child_row = re.search(rf'<tr data-run="{child.pk}">(.*?)</tr>', body, re.S).group(1)
    assert v0.label in child_row and child.policy_version.label in child_row
    data = client_as(world["researcher"]).get(url(campaign, "runs/data/")).json()
    by_id = {r["id"]: r for r in data["runs"]}
    assert by_id[running.pk]["step"] == 3 and by_id[running.pk]["total"] == 10 and by_id[running.pk]["percent"] == 30
    assert by_id[world["run"].pk]["status"] == "succeeded" and by_id[world["run"].pk]["percent"] == 100
    assert world["foreign"].pk not in by_id


def test_run_page_draws_curves_from_the_progress_history_and_lists_hashed_artifacts(world, storage):
    campaign = world["campaign"]
    history = [(s, 1.0 / s, {"rewards/accuracies": s / 10}) for s in range(1, 9)]
    run = make_run(campaign, history=history, finish=False)
    (run_services.run_dir(run.pk) / "adapter.bin").write_bytes(b"weights")
    run_services.run_succeed(run_id=run.pk, metrics={"steps": 8, "loss_last": 0.125})
    body = client_as(world["researcher"]).get(url(campaign, f"runs/{run.pk}/")).content.decode()
    charts = re.findall(r'data-metric="([^"]+)".*?<polyline[^>]*points="([^"]+)"', body, re.S)
    assert [name for name, _ in charts] == ["loss", "rewards/accuracies"]  # bookkeeping fields are not curves
    assert len(charts[0][1].split()) == 8  # one point per recorded step
    assert run_services.file_sha256(run_services.run_dir(run.pk) / "adapter.bin") in body
    assert "loss_last" in body and "0.125" in body
    assert "<code>lr</code>" in body or "<code>model</code>" in body  # the spec as a table


def test_compare_flags_differing_spec_fields_and_overlays_one_curve_per_run(world):
    campaign = world["campaign"]
    a = make_run(campaign, history=[(1, 0.9), (2, 0.8), (3, 0.6)], lr=1e-4, beta=0.1, metrics={"loss_last": 0.6})
    b = make_run(campaign, history=[(1, 0.9), (2, 0.5), (3, 0.3)], lr=5e-4, beta=0.1, metrics={"loss_last": 0.3})
    body = client_as(world["researcher"]).get(url(campaign, f"runs/compare/?run={a.pk}&run={b.pk}")).content.decode()
    spec = re.search(r'id="compare-spec"(.*?)</table>', body, re.S).group(1)
    differing = re.findall(r'<tr class="differs"><th scope="row"><code>([^<]+)</code>', spec)
    assert differing == ["lr"]  # beta and model are equal; output_dir always differs and is not flagged
    loss = re.search(r'data-metric="loss"(.*?)</figure>', body, re.S).group(1)
    assert re.findall(r'data-series="([^"]+)"', loss) == [f"run {a.pk} (dpo)", f"run {b.pk} (dpo)"]
    assert f"run {a.pk} (dpo)</li>" in loss  # the legend
    metrics = re.search(r'id="compare-metrics"(.*?)</table>', body, re.S).group(1)
    assert "loss_last" in metrics and "0.6" in metrics and "0.3" in metrics


def _judge_with_overlap(campaign, agree: bool):
    """Two annotators judge the same two items: identically (agree) or oppositely."""
    first, second = member(campaign, Role.ANNOTATOR), member(campaign, Role.ANNOTATOR)
    for user, flip in ((first, False), (second, not agree)):
        while (slot := assignment_next(user=user, campaign=campaign)) is not None:
            texts = sorted(slot.item.responses.all(), key=lambda r: r.text)
            winner = texts[1 if flip else 0]
            judgment_record(user=user, assignment_id=slot.pk, data=JudgmentInput(winner=winner.pk))


def test_reward_accuracy_is_shown_beside_the_human_ceiling_and_flagged_above_it(world):
    campaign, _ = make_campaign(name="Overlap campaign", overlap=2)
    add_items(campaign, [("Q1?", ["a1", "b1"]), ("Q2?", ["a2", "b2"])])
    _judge_with_overlap(campaign, agree=False)  # people never agree: ceiling 0%
    above = make_run(campaign, kind="reward", history=[(1, 0.7)],
                     metrics={"eval_accuracy_after": 0.9, "eval_accuracy_before": 0.5, "eval_pairs": 20})
    version = above.reward_version
    assert version.metrics["human_agreement"]["percent_agreement"]["value"] == 0.0
    client = client_as(member(campaign, Role.RESEARCHER))
    for path in ("runs/", "dashboard/", f"runs/{above.pk}/"):
        body = client.get(url(campaign, path)).content.decode()
        row = re.search(rf'<tr data-reward-model="{version.pk}">(.*?)</tr>', body, re.S).group(1)
        assert re.search(r'data-field="accuracy">90%', row) and re.search(r'data-field="ceiling">0%', row), path
        assert "above the human ceiling" in row, path
        assert "cannot be trusted above human agreement" in body, path


def test_policies_show_parent_run_round_promotion_win_rate_and_lineage(world):
    campaign = world["campaign"]
    base = base_model_get_or_create(name="tiny", source="tiny-model")
    v0 = policy_base_version(campaign=campaign, base=base)
    v1 = make_run(campaign, policy=v0, history=[(1, 0.5)]).policy_version
    v2 = make_run(campaign, policy=v1, history=[(1, 0.4)]).policy_version
    policy_promote(policy=v2, metrics={"judge": {"win_rate": 0.7, "ci_low": 0.55, "ci_high": 0.82, "n": 32},
                                      "kl_to_parent": 0.0123, "gate": {"passed": True, "reason": "judge win-rate 0.700"}})
    body = client_as(world["admin"]).get(url(campaign, "runs/")).content.decode()
    row = re.search(rf'<tr data-policy="{v2.pk}">(.*?)</tr>', body, re.S).group(1)
    assert re.findall(r"<li>([^<]+)</li>", row) == [v2.label, v1.label, v0.label]
    assert "judge: 0.70 [0.55, 0.82]" in row and "n=32" in row and "0.012" in row and "promoted" in row
    assert f"run #{v2.run_id}" in row and f"/api/v1/rlhf/policies/{v2.pk}/lineage/" in row


def test_hostile_run_texts_render_as_text_on_every_training_page(world):
    campaign = world["campaign"]
    base = base_model_get_or_create(name=XSS_IMG, source="tiny-model")
    v0 = policy_base_version(campaign=campaign, base=base)
    hostile = make_run(campaign, policy=v0, model=XSS, history=[(1, 0.5, {XSS_IMG: 1.0})],
                       metrics={XSS: XSS_IMG}, finish=False)
    run_services.run_fail(run_id=hostile.pk, error=f"Traceback: {XSS}\n{XSS_IMG}")
    other = world["run"]
    client = client_as(world["admin"])
    for path in ("runs/", f"runs/{hostile.pk}/", f"runs/compare/?run={hostile.pk}&run={other.pk}", "dashboard/"):
        body = client.get(url(campaign, path)).content.decode()
        assert XSS not in body and XSS_IMG not in body, path
        tags = Tags()
        tags.feed(body)
        assert not [t for t in tags.seen if t[0] == "img" or any(k.startswith("on") for k in t[1])], path
        assert all(a.get("type") in ("module", "application/json") for tag, a in tags.seen if tag == "script"), path
    detail = client.get(url(campaign, f"runs/{hostile.pk}/")).content.decode()
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in detail  # in the spec, the error and the log tail
    assert detail.count("Traceback: &lt;script&gt;") == 2


class Tags(HTMLParser):
    """Every element of a page as the browser's parser sees it: (tag, attributes)."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def handle_starttag(self, tag, attrs):
        self.seen.append((tag, dict(attrs)))


def _queries(client, path) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(path).status_code == 200
    return len(ctx.captured_queries)


def test_list_pages_cost_the_same_queries_for_2_runs_or_12(world, django_assert_max_num_queries):
    campaign = world["campaign"]
    client = client_as(world["researcher"])
    paths = [url(campaign, p) for p in ("runs/", "runs/data/", "dashboard/")]
    before = {p: _queries(client, p) for p in paths}
    base = base_model_get_or_create(name="tiny", source="tiny-model")
    parent = policy_base_version(campaign=campaign, base=base)
    for i in range(5):
        parent = make_run(campaign, policy=parent, history=[(1, 0.5)]).policy_version
        make_run(campaign, kind="reward", history=[(1, 0.6)], metrics={"eval_accuracy_after": 0.6 + i / 100})
    assert TrainingRun.objects.filter(campaign=campaign).count() == 12
    after = {p: _queries(client, p) for p in paths}
    assert after == before
    for path in paths:
        with django_assert_max_num_queries(before[path]):
            client.get(path)
    ids = "&".join(f"run={r.pk}" for r in TrainingRun.objects.filter(campaign=campaign)[:4])
    with django_assert_max_num_queries(12):
        assert client.get(url(campaign, f"runs/compare/?{ids}")).status_code == 200


def test_runs_data_reports_the_loop_state(world):
    from rlhf.services.loop import loop_configure

    campaign = world["campaign"]
    base = base_model_get_or_create(name="tiny", source="tiny-model")
    loop_configure(campaign=campaign, base_model=base, enabled=True)
    data = client_as(world["researcher"]).get(url(campaign, "runs/data/")).json()
    assert data["loop"]["enabled"] is True and data["loop"]["algorithm"] == "DPO"
    assert json.dumps(data)  # JSON-ready throughout
    body = client_as(world["researcher"]).get(url(campaign, "dashboard/")).content.decode()
    assert re.search(r'Loop <strong data-loop="enabled">on</strong>', body)


@pytest.mark.training
def test_a_real_tiny_reward_run_shows_its_loss_curve_and_accuracy_beside_the_ceiling(tmp_path_factory, storage):
    """End to end without shortcuts: the job's own trainer callback writes the progress file the page draws."""
    from rlhf.services.execution import execute_run
    from rlhf.training.tiny import build_tiny_reward, synthetic_pairs

    model = build_tiny_reward(tmp_path_factory.mktemp("tiny-rm") / "reward", seed=0)
    campaign, _ = make_campaign(name="Real run", overlap=2)
    add_items(campaign, [("Q1?", ["a1", "b1"]), ("Q2?", ["a2", "b2"])])
    _judge_with_overlap(campaign, agree=True)
    data = storage / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in synthetic_pairs(16, seed=1, chat=True)))
    run = run_services.run_create(kind="reward", campaign=campaign, spec={
        "model": str(model), "train_file": str(data), "eval_file": str(data), "max_steps": 4, "max_length": 64,
        "batch_size": 4})
    done = execute_run(run.pk)
    assert done.status == TrainingRun.Status.SUCCEEDED, done.error
    body = client_as(member(campaign, Role.RESEARCHER)).get(url(campaign, f"runs/{run.pk}/")).content.decode()
    loss = re.search(r'data-metric="loss".*?<polyline[^>]*points="([^"]+)"', body, re.S).group(1)
    assert len(loss.split()) == 4  # one point per training step
    accuracy = done.reward_version.metrics["eval_accuracy_after"]
    row = re.search(r'<tr data-reward-model="\d+">(.*?)</tr>', body, re.S).group(1)
    assert re.search(rf'data-field="accuracy">{round(accuracy * 100)}%', row)
    assert re.search(r'data-field="ceiling">100%', row)


@pytest.mark.training
def test_human_evaluations_list_win_rate_with_its_interval(tmp_path_factory):
    """Real generate jobs on two tiny policies fill the comparison round; one annotator prefers B on every item
    but the first: the page shows (n - 1) / n with its interval, as a row and on the interval chart."""
    from labeling.models import Prompt
    from labeling.services.items import PromptSpec, prompts_create
    from rlhf.models import ResponseProvenance
    from rlhf.services.human_eval import human_eval_create, human_eval_generate
    from rlhf.training.tiny import build_tiny_policy, synthetic_prompts

    folders = [build_tiny_policy(tmp_path_factory.mktemp(f"he-{s}") / "policy", seed=s) for s in (0, 1)]
    campaign, admin = make_campaign(name="Eval campaign", strength_enabled=False)
    unique = list({json.dumps(r["prompt"]): r["prompt"] for r in synthetic_prompts(60, seed=4, chat=True)}.values())
    prompts_create(campaign=campaign, specs=[PromptSpec(messages=p, split="test") for p in unique[:6]])
    a = policy_base_version(campaign=campaign, base=base_model_get_or_create(name="tiny-a", source=str(folders[0])))
    b = base_model_get_or_create(name="tiny-b", source=str(folders[1]))
    he = human_eval_create(campaign=campaign, model_a=a, model_b=b, enqueue=False, seed=3,
                           generation={"max_new_tokens": 8, "temperature": 1.0, "batch_size": 16, "max_length": 96})
    he = human_eval_generate(human_eval_id=he.pk)
    assert he.items_count >= 2, he.error
    judge = member(campaign, Role.ANNOTATOR)
    judged = 0
    while (slot := assignment_next(user=judge, campaign=campaign)) is not None:
        side = {p.response_id: p.policy_id for p in ResponseProvenance.objects.filter(response__in=slot.shown_order)}
        wanted = a.pk if judged == 0 else he.model_b_id
        winner = next(rid for rid, pid in side.items() if pid == wanted)
        judgment_record(user=judge, assignment_id=slot.pk, data=JudgmentInput(winner=winner))
        judged += 1
    assert judged == he.items_count and Prompt.objects.filter(campaign=campaign).count() == 6
    body = client_as(admin).get(url(campaign, "runs/")).content.decode()
    row = re.search(rf'<tr data-human-eval="{he.pk}">(.*?)</tr>', body, re.S).group(1)
    expected = (judged - 1) / judged
    cell = re.search(r'data-field="win-rate">([0-9.]+) \[([0-9.]+), ([0-9.]+)\]', row)
    assert float(cell.group(1)) == pytest.approx(expected, abs=0.005)
    assert float(cell.group(2)) <= expected <= float(cell.group(3)) and float(cell.group(2)) < float(cell.group(3))
    assert f"{judge.username}: {expected:.2f}" in row and f"{judged} / {he.items_count}" in row
    dot = re.search(r'id="human-eval-chart".*?<circle class="dot" cx="([0-9.]+)"', body, re.S).group(1)
    assert float(dot) == pytest.approx(170 + expected * (560 - 170 - 16), abs=0.2)  # charts.interval_chart's axis


def test_curve_colours_stand_out_against_the_chart_panel():
    """Each series colour (app.css .s0 .. .s3) reaches 3:1 against the panel, WCAG's non-text contrast."""
    from .test_accessibility import CSS, contrast, variables

    colours = dict(re.findall(r"\.(s[0-3]) \{ stroke: (#[0-9a-fA-F]{6}); \}", CSS.read_text(encoding="utf-8")))
    assert sorted(colours) == ["s0", "s1", "s2", "s3"]
    panel = variables()["--panel"]
    for name, colour in colours.items():
        assert contrast(colour, panel) >= 3.0, (name, colour)
