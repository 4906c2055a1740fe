"""The README's first screen: its two set-up steps are what CI runs, its pictures are there and
small, and every link into the repository resolves."""

import re

from conftest import REPO


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)


def test_ci_runs_the_readmes_two_set_up_steps_verbatim():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    setup = readme[readme.index("## Set up and try it") :]
    install_and_run, tests = _bash_blocks(setup)[:2]
    assert install_and_run.strip().splitlines() == ['pip install -e ".[test]"', "streamcam analyze sample_videos/sample.mp4 --top-n 5"]
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    for line in install_and_run.strip().splitlines():
        assert line in ci, f".ci/run does not run {line!r} as the README writes it"
    assert tests.strip() == "python -m pytest -q"
    assert any(line.endswith(" python -m pytest -q") for line in ci)


def test_the_first_screen_shows_pictures_and_links_resolve():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    first_screen = readme[: readme.index("## Set up and try it")]
    pictures = re.findall(r'src="([^"]+)"', first_screen)
    assert pictures == ["docs/overlay.png", "docs/review.png"]
    for picture in pictures:
        assert (REPO / picture).stat().st_size < 150_000, picture  # small: scripts/make_docs_pictures.py
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" not in target:
                assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
