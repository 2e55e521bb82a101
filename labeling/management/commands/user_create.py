from __future__ import annotations

import os

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from rest_framework.authtoken.models import Token

from ._base import LoopwiseCommand


class Command(LoopwiseCommand):
    help = "Create a user. The password comes from --password-env (an environment variable's name), never argv."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--email", default="")
        parser.add_argument("--password-env", default="LOOPWISE_PASSWORD", help="variable holding the password")
        parser.add_argument("--staff", action="store_true", help="site staff: may do everything")
        parser.add_argument("--token", action="store_true", help="also create and print an API token")

    def handle(self, *args, username, email, password_env, staff, token, **opts):
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            raise CommandError(f"user {username!r} already exists", returncode=2)
        password = os.environ.get(password_env)
        if not password:
            raise CommandError(f"set the password in ${password_env} (it is not taken from the command line)", returncode=2)
        try:
            validate_password(password, User(username=username, email=email))
        except ValidationError as exc:
            raise CommandError("password refused: " + " ".join(exc.messages), returncode=2) from exc
        user = User.objects.create_user(username=username, email=email, password=password, is_staff=staff, is_superuser=staff)
        self.stdout.write(f"created user {user.username} (id {user.pk}){' as staff' if staff else ''}")
        if token:
            self.stdout.write(f"token: {Token.objects.create(user=user).key}")
