"""CLI surface: every command and option has help; importing streamcam does not load TensorFlow."""

import os
import re
import subprocess
import sys

import typer
import typer.main
from typer.testing import CliRunner

from streamcam.cli import DEFAULT_ENGINE, EngineChoice, app, with_engine_options

runner = CliRunner()


def test_every_command_and_option_has_help():
    group = typer.main.get_command(app)
    assert group.commands
    kinds = []
    for name, command in group.commands.items():
        assert command.help, name
        for param in command.params:
            kinds.append(param.param_type_name)
            # param_type_name, not isinstance(click.Option): typer >= 0.29 vendors its own click.
            if param.param_type_name == "option" and param.name != "help":
                assert param.help, f"{name} --{param.name} has no help"
            if param.param_type_name == "argument":
                assert getattr(param, "help", None), f"{name} {param.name} has no help"
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output
    assert kinds.count("option") > 30 and kinds.count("argument") >= 3  # the checks above really ran


def test_every_command_that_runs_the_model_has_the_same_engine_options():
    group = typer.main.get_command(app)
    engine_options = {f"--{name}" for name in EngineChoice.__dataclass_fields__}

    def options(name):
        return {decl for param in group.commands[name].params for decl in param.opts if decl.startswith("--")}

    for name in ("analyze", "review", "live", "image"):
        assert engine_options <= options(name), name


def test_engine_options_reach_the_command_as_one_choice_beside_its_own():
    seen = []
    toy = typer.Typer()

    @toy.command()
    @with_engine_options
    def run(source: str, engine_choice: EngineChoice = DEFAULT_ENGINE, quiet: bool = False):
        seen.append((source, engine_choice, quiet))

    result = runner.invoke(toy, ["clip.mp4", "--method", "hirescam", "--runtime", "keras", "-m", "m.keras", "--quiet"])
    assert result.exit_code == 0, result.output
    assert seen == [("clip.mp4", EngineChoice(model="m.keras", method="hirescam", runtime="keras"), True)]
    runner.invoke(toy, ["other.mp4"])
    assert seen[1] == ("other.mp4", EngineChoice(), False)  # the defaults are EngineChoice's own


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("streamcam ")


def test_import_and_help_do_not_load_tensorflow():
    code = "import sys, streamcam, streamcam.cli; assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
    result = subprocess.run([sys.executable, "-m", "streamcam", "--help"], capture_output=True, text=True, check=True)
    assert "image" in result.stdout


def test_doctor_lists_versions_devices_codecs_and_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("STREAMCAM_CACHE_DIR", str(tmp_path))
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0
    for word in ("tensorflow", "devices:", "libx264", str(tmp_path)):
        assert word in result.output


def _help_at_80_columns(command: str) -> str:
    """`streamcam <command> --help` as a user at an 80-column terminal sees it (a real process)."""
    env = {**os.environ, "COLUMNS": "80"}
    result = subprocess.run([sys.executable, "-m", "streamcam", command, "--help"], capture_output=True, text=True, env=env, check=True)
    return result.stdout


def test_help_keeps_every_extras_name_and_reads_at_80_columns():
    """Each `streamcam[extra]` an option's help names is shown as written (rich markup once ate the
    brackets: 'install streamcam'), flags take no placeholder, values have human names, and at 80
    columns every line fits with room for the descriptions."""
    group = typer.main.get_command(app)
    named_anywhere = set()
    for name, command in group.commands.items():
        source = " ".join(str(p.help or "") for p in command.params) + str(command.help or "")
        extras = set(re.findall(r"streamcam\[(\w+)\]", source))
        named_anywhere |= extras
        shown = _help_at_80_columns(name)
        for extra in extras:
            assert f"streamcam[{extra}]" in shown, f"{name} --help lost streamcam[{extra}]"
        assert all(len(line) <= 80 for line in shown.splitlines()), name
        assert not re.search(r"<(bool|str|int|float|path|list\[\w+\])[^>]*>", shown), f"{name} --help shows a type placeholder"
        assert "{sources}" not in shown
    assert {"jax", "ray"} <= named_anywhere  # the extras a user installs for a command are named in its help
    analyze = _help_at_80_columns("analyze")
    assert re.search(r"^\s+-q, --quiet\s+\S", analyze, re.M)  # a flag: no placeholder after it
    assert re.search(r"^\s+--start TIME\s", analyze, re.M) and re.search(r"^\s+-o, --out-dir DIR\s", analyze, re.M)
    widest_option = max(len(m.group(1)) for m in re.finditer(r"^(\s+-.*?)\s{2,}\S", analyze, re.M))
    assert widest_option <= 40  # the description column keeps at least 40 of the 80 characters


def test_classes_lists_ids_synsets_and_names():
    result = runner.invoke(app, ["classes", "bicycle"])
    assert result.exit_code == 0
    assert result.stdout == "444  n02835271  bicycle-built-for-two  bicycle-built-for-two, tandem bicycle, tandem\n"
    lines = runner.invoke(app, ["classes"]).stdout.splitlines()
    assert len(lines) == 1000 and lines[920].split()[:3] == ["920", "n06874185", "traffic_light"]


def test_classes_says_when_nothing_matches():
    result = runner.invoke(app, ["classes", "zzzz"])
    assert result.exit_code == 0 and result.stdout == ""
    assert "no ImageNet class name contains 'zzzz'" in result.stderr


def test_a_name_that_is_only_part_of_one_is_refused_before_the_model_loads():
    result = runner.invoke(app, ["image", "missing.jpg", "--classes", "bicycle"])  # no model loads: a second
    assert result.exit_code == 2
    assert "'bicycle' is not a class name, only part of one: 444 bicycle-built-for-two" in result.stderr
