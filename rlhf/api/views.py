"""REST API of the RLHF engine: thin views over ``rlhf.selectors`` and ``rlhf.services``. Campaign roles:
admins create, cancel, configure, start, step and roll back; researchers (and admins) read."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import selectors as labeling_selectors
from labeling.errors import NotFound, PermissionDenied
from labeling.models import Role

from .. import selectors
from ..models import LoopIteration
from ..services import human_eval, registry, runs
from ..services import loop as loop_services
from . import serializers as s

ADMIN = [Role.ADMIN]
READERS = [Role.ADMIN, Role.RESEARCHER]


def _page(request: Request, view: APIView, queryset, serializer_class) -> Response:
    paginator = LimitOffsetPagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


def _campaign(request: Request, campaign_id: int, roles):
    return labeling_selectors.campaign_get_for_roles(user=request.user, campaign_id=campaign_id, roles=roles)


def _require_admin(request: Request, campaign) -> None:
    if campaign is None:
        if not request.user.is_staff:
            raise PermissionDenied("runs outside a campaign are managed by site staff")
        return
    labeling_selectors.require_role(user=request.user, campaign=campaign, roles=ADMIN)


class BaseModelListView(APIView):
    @extend_schema(responses=s.BaseModelOut(many=True))
    def get(self, request: Request) -> Response:
        return _page(request, self, selectors.base_model_list(), s.BaseModelOut)

    @extend_schema(request=s.BaseModelIn, responses={201: s.BaseModelOut})
    def post(self, request: Request) -> Response:
        if not request.user.is_staff:
            raise PermissionDenied("registering base models needs site staff")
        data = s.BaseModelIn(data=request.data)
        data.is_valid(raise_exception=True)
        model = registry.base_model_get_or_create(**data.validated_data)
        return Response(s.BaseModelOut(model).data, status=status.HTTP_201_CREATED)


class RunListView(APIView):
    @extend_schema(responses=s.RunListOut(many=True))
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, READERS)
        qs = selectors.run_list(campaign=campaign, kind=request.query_params.get("kind"),
                                status=request.query_params.get("status"))
        return _page(request, self, qs, s.RunListOut)

    @extend_schema(request=s.RunIn, responses={201: s.RunOut})
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, ADMIN)
        data = s.RunIn(data=request.data)
        data.is_valid(raise_exception=True)
        policy = None
        if data.validated_data.get("policy"):
            policy = selectors.policy_get(user=request.user, policy_id=data.validated_data["policy"])
            if policy.campaign_id != campaign.pk:
                raise NotFound(f"policy {policy.pk} not found in campaign {campaign.pk}")
        spec = dict(data.validated_data["spec"])
        if policy is not None:
            spec.update(registry.policy_spec_fields(policy))
            if data.validated_data["kind"] not in ("dpo", "generate"):
                spec.pop("adapter", None)
        run = runs.run_create(kind=data.validated_data["kind"], spec=spec, campaign=campaign, policy=policy,
                              created_by=request.user)
        runs.run_enqueue(run=run)
        return Response(s.RunOut(run).data, status=status.HTTP_201_CREATED)


class RunDetailView(APIView):
    @extend_schema(responses=s.RunOut)
    def get(self, request: Request, run_id: int) -> Response:
        return Response(s.RunOut(selectors.run_get(user=request.user, run_id=run_id)).data)


class RunProgressView(APIView):
    @extend_schema(responses=s.RunProgressOut)
    def get(self, request: Request, run_id: int) -> Response:
        return Response(s.RunProgressOut(selectors.run_get(user=request.user, run_id=run_id)).data)


class RunCancelView(APIView):
    @extend_schema(request=None, responses=s.RunOut)
    def post(self, request: Request, run_id: int) -> Response:
        run = selectors.run_get(user=request.user, run_id=run_id)
        _require_admin(request, run.campaign)
        return Response(s.RunOut(runs.run_cancel(run=run)).data)


class PolicyListView(APIView):
    @extend_schema(responses=s.PolicyOut(many=True))
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, READERS)
        return _page(request, self, selectors.policy_list(campaign=campaign), s.PolicyOut)


class PolicyLineageView(APIView):
    """The policy and its ancestors (newest first), each with the run, data hash and round that made it."""

    @extend_schema(responses=dict)
    def get(self, request: Request, policy_id: int) -> Response:
        policy = selectors.policy_get(user=request.user, policy_id=policy_id)
        chain = []
        for node in registry.policy_lineage(policy=policy):
            entry = s.PolicyOut(node).data
            if node.run_id:
                entry["run_detail"] = {"id": node.run_id, "kind": node.run.kind, "status": node.run.status,
                                       "data_path": node.run.data_path, "data_sha256": node.run.data_sha256}
            chain.append(entry)
        return Response({"policy": policy.pk, "lineage": chain})


class PolicyRollbackView(APIView):
    @extend_schema(request=None, responses=s.LoopConfigOut)
    def post(self, request: Request, campaign_id: int, policy_id: int) -> Response:
        campaign = _campaign(request, campaign_id, ADMIN)
        policy = selectors.policy_get(user=request.user, policy_id=policy_id)
        config = registry.policy_rollback(campaign=campaign, policy=policy)
        return Response(s.LoopConfigOut(config).data)


class RewardModelListView(APIView):
    @extend_schema(responses=s.RewardModelOut(many=True))
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, READERS)
        return _page(request, self, selectors.reward_model_list(campaign=campaign), s.RewardModelOut)


class LoopConfigView(APIView):
    @extend_schema(responses=s.LoopConfigOut)
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, READERS)
        config = selectors.loop_config_get(campaign=campaign)
        if config is None:
            raise NotFound(f"campaign {campaign_id} has no loop configuration")
        return Response(s.LoopConfigOut(config).data)

    @extend_schema(request=s.LoopConfigIn, responses=s.LoopConfigOut)
    def put(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, ADMIN)
        data = s.LoopConfigIn(data=request.data)
        data.is_valid(raise_exception=True)
        config = loop_services.loop_configure(campaign=campaign, **data.validated_data)
        return Response(s.LoopConfigOut(config).data)

    patch = put


class LoopStatusView(APIView):
    @extend_schema(responses=dict)
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, READERS)
        body = loop_services.loop_status(campaign=campaign)
        body["iterations"] = s.IterationOut(selectors.iteration_list(campaign=campaign)[:20], many=True).data
        return Response(body)


class LoopStartView(APIView):
    @extend_schema(request=None, responses={202: s.RunOut})
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, ADMIN)
        run = loop_services.loop_start(campaign=campaign, created_by=request.user)
        return Response(s.RunOut(run).data, status=status.HTTP_202_ACCEPTED)


class LoopStepView(APIView):
    """Run a loop step now: ``{"round": id}`` closes that round and starts its iteration; ``{"iteration": id}``
    (or nothing: the newest unfinished one) runs that iteration's current step again, retrying a failed one."""

    @extend_schema(request=s.StepIn, responses={202: dict})
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, ADMIN)
        data = s.StepIn(data=request.data)
        data.is_valid(raise_exception=True)
        rnd = iteration = None
        if data.validated_data.get("round"):
            rnd = labeling_selectors.round_get(campaign=campaign, round_id=data.validated_data["round"])
        if data.validated_data.get("iteration"):
            iteration = LoopIteration.objects.filter(campaign=campaign, pk=data.validated_data["iteration"]).first()
            if iteration is None:
                raise NotFound(f"iteration {data.validated_data['iteration']} not found")
        result = loop_services.loop_step_now(campaign=campaign, round=rnd, iteration=iteration)
        return Response(result, status=status.HTTP_202_ACCEPTED)


def _eval_side(campaign, data: dict, side: str):
    """The side's PolicyVersion (of this campaign: another campaign's is not found) or registered BaseModel."""
    if data.get(f"model_{side}") is not None:
        policy = selectors.policy_list(campaign=campaign).filter(pk=data[f"model_{side}"]).first()
        if policy is None:
            raise NotFound(f"policy {data[f'model_{side}']} not found in campaign {campaign.pk}")
        return policy
    base = selectors.base_model_list().filter(pk=data[f"base_model_{side}"]).first()
    if base is None:
        raise NotFound(f"base model {data[f'base_model_{side}']} not found")
    return base


class HumanEvalListView(APIView):
    """Human evaluations of a campaign: model B against model A on held-out prompts, judged in a new round."""

    @extend_schema(responses=s.HumanEvalOut(many=True))
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, READERS)
        return _page(request, self, human_eval.human_eval_list(campaign=campaign), s.HumanEvalOut)

    @extend_schema(request=s.HumanEvalIn, responses={201: s.HumanEvalOut})
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, ADMIN)
        data = s.HumanEvalIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        he = human_eval.human_eval_create(
            campaign=campaign, model_a=_eval_side(campaign, v, "a"), model_b=_eval_side(campaign, v, "b"),
            prompts=v.get("prompt_ids") or v.get("n_prompts"), seed=v["seed"], generation=v.get("generation"),
            name=v.get("name", ""), created_by=request.user,
        )
        return Response(s.HumanEvalOut(he).data, status=status.HTTP_201_CREATED)


class HumanEvalDetailView(APIView):
    """One evaluation with its result: win-rate of B over A, bootstrap 95% CI, counts, per annotator.
    ``?both_bad=exclude`` (default) or ``tie``."""

    @extend_schema(responses=s.HumanEvalDetailOut)
    def get(self, request: Request, campaign_id: int, human_eval_id: int) -> Response:
        campaign = _campaign(request, campaign_id, READERS)
        he = human_eval.human_eval_get(campaign=campaign, human_eval_id=human_eval_id)
        if he is None:
            raise NotFound(f"human evaluation {human_eval_id} not found in campaign {campaign.pk}")
        result = human_eval.human_eval_result(human_eval=he, both_bad=request.query_params.get("both_bad", "exclude"))
        return Response(s.HumanEvalDetailOut(he, context={"result": result}).data)
