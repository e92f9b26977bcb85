"""Create a curator account and print how to log in to the console."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from digest import services


class Command(BaseCommand):
    help = 'Create a staff account in the "curator" group with a generated password and print how to log in.'

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email", help="the curator's address; also their username")

    def handle(self, *args: object, **options: object) -> None:
        try:
            user, password = services.curator_create(email=str(options["email"]))
        except services.CuratorError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"curator console: {services.console_url()}")
        self.stdout.write(f"username: {user.get_username()}")
        self.stdout.write(f"password: {password}")
        self.stdout.write("(shown once: keep it in a password manager; change it from the console's top bar)")
