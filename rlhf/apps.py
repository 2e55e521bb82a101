from django.apps import AppConfig


class RlhfConfig(AppConfig):
    name = "rlhf"
    verbose_name = "RLHF"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # labeling never imports rlhf: it offers a subscription hook, and the loop listens here. The callbacks
        # run after the judgment / round close committed and only enqueue a Celery task.
        from labeling.events import subscribe

        from .services.loop import on_judgment_recorded, on_round_closed

        subscribe("judgment.recorded", on_judgment_recorded)
        subscribe("round.closed", on_round_closed)
