"""The `sweeper` command, run in process as a user would type it."""

from __future__ import annotations

from sweeper.cli import main


def sweeper(*argv: str, capsys) -> tuple[int, str, str]:
    """Run `sweeper ARGV` as `sweeper.cli.main` does; return (exit status, stdout, stderr)."""
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err
