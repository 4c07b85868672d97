"""The `agentsync` program: Invoke's Program, with only the options that mean something here.

Why it exists: Invoke's core options (`--dry`, `--echo`, `--pty`, `--warn-only`,
`--command-timeout`, `-f`, `--hide`, ...) steer Invoke's own `c.run`, which no
task here uses. They were accepted and did nothing — `agentsync --dry push`
pushed. Here they do not exist: an unknown flag is bad input (exit 2).

Help never acts: `-h`/`--help` anywhere before `--` prints help and runs
nothing. Invoke alone would hand a `--help` after a task to that task's
positional argument (`claim --help` claimed an area named `--help`).

Exit statuses: 0 good, 1 the fleet is not where it should be, 2 bad input
(unknown task or flag, missing argument), 130/143/129 on SIGINT/SIGTERM/SIGHUP.
"""

from __future__ import annotations

import inspect
import shutil
import sys
import textwrap

from invoke import Argument, Exit, ParseError, Program
from invoke.completion.complete import complete, print_completion_script

from .errors import UsageError
from .output import emit_error_json, error

HELP_FLAGS = ("-h", "--help")
USAGE = 2  # the exit status of bad input
EXIT_STATUSES = ("Exit status: 0 all good, 1 the fleet is not where it should be, 2 bad input,\n"
                 "130/143/129 interrupted (Ctrl-C, SIGTERM, SIGHUP).")


def help_requested(argv: list[str]) -> bool:
    """`-h`/`--help` anywhere among the arguments (before a `--`)."""
    words = argv[: argv.index("--")] if "--" in argv else argv
    return any(w in HELP_FLAGS for w in words)


def refuse_bad_input(binary: str, argv: list[str], message: str) -> None:
    """Bad input on the command line: say so (as JSON too, with --json) and exit 2."""
    hint = f"`{binary} --help` lists the tasks; `{binary} TASK --help` a task's options"
    if "'--dry'" in message or "'-R'" in message:
        hint = "this tool's dry run is `--dry-run` (or the `plan` task); " + hint
    problem = UsageError(message, hint=hint)
    if "--json" in argv:
        emit_error_json(problem)
    error(str(problem))
    sys.exit(USAGE)


def bad_input_exits_2(program: Program) -> None:
    """Make Invoke's own `inv` program treat a bad command line for our tasks as bad input: exit 2 with our
    error (and JSON with --json), not Invoke's exit 1.

    `inv` loads tasks.py (which calls this) after its core options and before it parses the tasks, so the
    unknown task or flag, the missing argument, all land here. Only that one program object changes.
    """
    parse_tasks = program.parse_tasks

    def parse_tasks_or_refuse() -> None:
        try:
            parse_tasks()
        except ParseError as exc:
            refuse_bad_input("inv", list(program.argv or []), str(exc))

    program.parse_tasks = parse_tasks_or_refuse  # type: ignore[method-assign]


class FleetProgram(Program):
    """`agentsync`: our tasks, `--help`, `--list`, `--version` and shell completion; nothing else."""

    early: tuple = ()  # connections begun before the program loaded (launch.py), handed to the task that wants them

    def core_args(self) -> list[Argument]:
        return [
            Argument(names=("help", "h"), optional=True,
                     help="show this overview, or a task's help (agentsync TASK --help); runs nothing"),
            Argument(names=("list", "l"), optional=True, help="list the tasks (optionally of one group: --list history)"),
            Argument(names=("version", "V"), kind=bool, default=False, help="show the version"),
            Argument(names=("complete",), kind=bool, default=False, help="print tab-completion candidates"),
            Argument(names=("print-completion-script",), kind=str, default="",
                     help="print the tab-completion script for bash, zsh or fish"),
        ]

    def run(self, argv: list[str] | None = None, exit: bool = True) -> None:  # noqa: A002 - Invoke's signature
        try:
            self.create_config()
            self.parse_core(argv)
            self.parse_collection()
            if help_requested(self.argv[1:]):
                self.show_help(self.argv[1:])
                raise Exit
            self.parse_tasks()
            self.parse_cleanup()
            self.update_config()
            self.execute()
        except ParseError as exc:
            self.refuse(str(exc))
        except Exit as exc:
            if exc.message:
                print(exc.message, file=sys.stderr)
            sys.exit(exc.code)
        except KeyboardInterrupt:
            sys.exit(130)

    def refuse(self, message: str) -> None:
        """Bad input on the command line: say so (as JSON too, with --json) and exit 2."""
        refuse_bad_input(self.binary, self.argv, message)

    def parse_core(self, argv: list[str] | None) -> None:
        self.normalize_argv(argv)
        self.parse_core_args()
        if self.args.version.value:
            self.print_version()
            raise Exit
        if self.args["print-completion-script"].value:
            print_completion_script(shell=self.args["print-completion-script"].value, names=self.binary_names)
            raise Exit

    def parse_cleanup(self) -> None:
        self.list_format, self.list_depth = "flat", 0
        root = self.args.list.value
        if root:
            if isinstance(root, str):
                self.list_root = root
                try:
                    self.scoped_collection = self.collection.subcollection_from_path(root)
                except KeyError:
                    raise ParseError(f"no task group named {root!r}") from None
            self.list_tasks()
            raise Exit
        if self.args.complete.value:
            complete(names=self.binary_names, core=self.core, initial_context=self.initial_context,
                     collection=self.collection, parser=self._make_parser())
        if not self.tasks:
            self.print_help()
            raise Exit

    def update_config(self, merge: bool = True) -> None:
        """No flag of ours feeds Invoke's config (there is no --dry, --echo, ... to pass on)."""
        if merge:
            self.config.merge()

    def show_help(self, words: list[str]) -> None:
        """Help for the first task named among `words`, else the overview."""
        names = [w for w in words if not w.startswith("-")]
        if not names:
            self.print_help()
            return
        self.parser = self._make_parser()
        if names[0] not in self.parser.contexts:
            raise ParseError(f"No idea what '{names[0]}' is!")
        self.print_task_help(names[0])

    def print_help(self) -> None:
        """The overview: one line per task (its first sentence), the options, the exit statuses."""
        width = max(shutil.get_terminal_size((80, 24)).columns, 40)
        print(f"Usage: {self.binary} TASK [--options]    (a task's options: {self.binary} TASK --help)")
        print("")
        print("Tasks:")
        shown = {n: " (" + ", ".join(a) + ")" if a else "" for n, a in self.collection.task_names.items()}
        column = max(len(n + alias) for n, alias in shown.items()) + 3
        for name in sorted(shown, key=lambda n: (n.count("."), n)):
            summary = (inspect.getdoc(self.collection[name]) or "").split("\n")[0].rstrip(".")
            line = f"  {name + shown[name]:<{column}}{summary}"
            print(line if len(line) <= width else line[: width - 1] + "…")
        print("")
        print("Options:")
        self.print_columns(self.initial_context.help_tuples())
        print(EXIT_STATUSES)

    def print_task_help(self, name: str) -> None:
        context = self.parser.contexts[name]
        positional = " ".join(arg.name.upper().rstrip("_") for arg in context.positional_args)
        print(f"Usage: {self.binary} {name} [--options] {positional}".rstrip())
        print("")
        width = max(shutil.get_terminal_size((80, 24)).columns, 40)
        for paragraph in (inspect.getdoc(self.collection[name]) or "").split("\n\n"):
            print(textwrap.fill(" ".join(paragraph.split()), width - 1, initial_indent=self.leading_indent,
                                subsequent_indent=self.leading_indent))
        print("")
        print("Options:")
        self.print_columns(context.help_tuples())
        print(EXIT_STATUSES)


def task_help(collection, body, binary: str = "agentsync") -> None:
    """Print the help of the task whose body is `body` (for a `--help` that reached it as an argument value,
    e.g. `inv claim --help`, where Invoke's own program parses the command line)."""
    program = FleetProgram(namespace=collection, binary=binary)
    program.create_config()
    program.collection = collection
    program.parser = program._make_parser()
    name = next(n for n in collection.task_names if collection[n].body is body)
    program.print_task_help(name)
