"""The ``gzslbench`` command group and its error handling; each sub-command lives in its own module.

A sub-command's module is imported when the command is called, so ``--version`` and a bad command
name answer without loading torch (seconds).
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
import warnings
from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource

from gzslbench.core.errors import (
    DISK_FULL,
    GZSLBenchError,
    disk_full_message,
    misplaced_path_message,
    permission_message,
)
from gzslbench.core.registry import PluginWarning
from gzslbench.execution.process import interrupt_exit_code, set_up_own_process, sigterm_as_interrupt

# command name -> (module of gzslbench.cli whose import registers it on ``cli``, the first paragraph of its
# help), so that ``gzslbench --help`` lists the commands without importing them (a test keeps both in step)
COMMANDS = {
    "check": (
        "check",
        "Run a fixed suite (or read its results) and compare H / U / S / AUSUC seed by seed with a committed baseline.",
    ),
    "config": ("listing", "Print the fully resolved config a run would use (with --grid: the method's search space)."),
    "data": ("data", "Download the xlsa17 release and check which datasets are present and valid."),
    "list": ("listing", "Show registered methods or datasets with a one-line description."),
    "plot": ("plot", "Draw figures from run records (PNG and PDF)."),
    "report": ("report", "Write the tables (Markdown, LaTeX) and every figure that the records allow into one folder."),
    "run": (
        "run",
        "Train and evaluate methods on datasets over seeds; write one JSON record per run (under --results).",
    ),
    "sweep": (
        "sweep",
        "Run every point of a grid over seeds: one record per (point, seed), tagged with the sweep's name.",
    ),
    "table": ("table", "Paper tables from run records: U / S / H mean ± std over seeds per method and dataset."),
    "tune": (
        "sweep",
        "Choose hyper-parameters on the validation split, then train on trainval and test the chosen point.",
    ),
}


class _FriendlyGroup(click.Group):
    """Turns user errors and Ctrl-C into one line and a non-zero exit, never a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            try:
                importlib.import_module(f"gzslbench.cli.{COMMANDS[cmd_name][0]}")  # registers the command
            except KeyboardInterrupt:
                raise click.exceptions.Abort from None  # Ctrl-C before the command started: "interrupted"
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of ``--help`` from :data:`COMMANDS`, as click writes it, without importing them."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, click.Command(name, help=COMMANDS[name][1]).get_short_help_str(limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.format_message())
            sys.exit(0)
        except click.UsageError as exc:  # one line instead of click's usage block
            if isinstance(exc, click.NoSuchOption) and exc.ctx:  # suggest no hidden (deprecated) option
                hidden = {
                    opt for param in exc.ctx.command.params if getattr(param, "hidden", False) for opt in param.opts
                }
                exc.possibilities = [opt for opt in exc.possibilities or () if opt not in hidden]
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
            message = " ".join(exc.format_message().split())  # click lists choices one per line
            click.echo(f"error: {message}{hint}", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("interrupted", err=True)
            sys.exit(130)
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with sigterm_as_interrupt():
                return super().invoke(ctx)
        except GZSLBenchError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt as exc:
            click.echo("interrupted: finished runs are saved; run the same command again to resume", err=True)
            ctx.exit(interrupt_exit_code(exc))
        except BrokenPipeError:  # `gzslbench ... | head`: the reader left; say nothing more
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(0)
        except (click.exceptions.Exit, click.exceptions.ClickException, click.exceptions.Abort):
            raise
        except Exception as exc:
            if isinstance(exc, OSError) and exc.errno in DISK_FULL:  # a write outside atomic_path: nothing is lost
                click.echo(f"error: {disk_full_message(exc.filename)}", err=True)
                ctx.exit(2)
            if isinstance(exc, PermissionError):  # the user's files, not a fault of gzslbench
                click.echo(f"error: {permission_message(exc)}", err=True)
                ctx.exit(2)
            misplaced = (IsADirectoryError, NotADirectoryError, FileExistsError)
            if isinstance(exc, misplaced) and (message := misplaced_path_message(exc)):
                click.echo(f"error: {message}", err=True)
                ctx.exit(2)
            if os.environ.get("GZSLBENCH_DEBUG"):
                traceback.print_exc()
            click.echo(f"error: unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)", err=True)
            ctx.exit(1)


OUT_DEPRECATED = "warning: --out is deprecated for the results folder; use --results"


def results_option(help_text: str) -> Any:
    """``--results DIR``, the results folder, passed to the command as ``out``: one spelling in every command."""
    return click.option(
        "--results",
        "out",
        default="results",
        show_default=True,
        type=click.Path(file_okay=False),
        metavar="DIR",
        help=help_text,
    )


quiet_option = click.option(
    "--quiet", "-q", is_flag=True, help="No progress, plan or notes on stderr (warnings and errors still print)."
)


def results_folder_options(func: Any) -> Any:
    """``--results DIR`` (the results folder, passed as ``out``) and its deprecated alias ``--out`` (``legacy_out``).

    For ``run``, ``sweep`` and ``tune``, which write run records; the command resolves the two with
    :func:`results_folder`. ``--out`` names the output folder of figures and reports elsewhere.
    """
    func = click.option(
        "--out",
        "legacy_out",
        hidden=True,
        type=click.Path(file_okay=False),
        help="Deprecated alias of --results (for one release).",
    )(func)
    return results_option("Results folder: run records are written under it (--out: deprecated alias).")(func)


def results_folder(results: str, legacy_out: str | None) -> str:
    """The results folder of ``--results``, or of the deprecated ``--out`` with one warning line on stderr."""
    if legacy_out is not None:
        ctx = click.get_current_context()
        if ctx.get_parameter_source("out") is not ParameterSource.DEFAULT:
            raise click.UsageError("--out is the deprecated name of --results; give --results only")
        click.echo(OUT_DEPRECATED, err=True)
        results = legacy_out
    if not results.strip():
        raise GZSLBenchError("--results must name a folder (got an empty string)")
    return results


def names(values: tuple[str, ...]) -> list[str]:
    """``("a,b", "c")`` -> ``["a", "b", "c"]``: options take repeats and comma lists alike."""
    return [name for value in values for name in value.split(",") if name.strip()]


@click.group(cls=_FriendlyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gzslbench")
@click.option("--debug", is_flag=True, help="Show the full traceback of unexpected errors (or set GZSLBENCH_DEBUG=1).")
def cli(debug: bool) -> None:
    """Reproducible Generalized Zero-Shot Learning benchmarks: U / S / H over seeds."""
    if debug:
        os.environ["GZSLBENCH_DEBUG"] = "1"
    set_up_own_process()  # the command line is gzslbench's own process
    if not getattr(warnings.showwarning, "plugin_lines", False):
        warnings.showwarning = _plugin_warnings_as_lines(warnings.showwarning)


def _plugin_warnings_as_lines(show: Callable[..., None]) -> Callable[..., None]:
    """``show``, except that a skipped plugin is one ``warning:`` line, without Python's source line."""

    def show_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, PluginWarning):
            click.echo(f"warning: {message}", err=True)
        else:
            show(message, category, *args, **kwargs)

    show_warning.plugin_lines = True  # type: ignore[attr-defined]
    return show_warning
