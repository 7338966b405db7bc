"""The CI guards of tests/conftest.py, run on tiny throwaway test files (pytester), and the README's test
command being the one .ci/run runs."""

import re
from pathlib import Path

import pytest


pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
CONFTEST = Path(__file__).with_name("conftest.py").read_text()

TESTS = """
import pytest

def test_runs():
    pass

def test_needs_a_missing_module():
    pytest.importorskip("no_such_module_turbonext_ci")

@pytest.mark.xfail(reason="known")
def test_expected_failure():
    raise AssertionError
"""


@pytest.fixture
def guarded(pytester, monkeypatch):
    monkeypatch.delenv("TURBONEXT_REQUIRE_ALL", raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nmarkers =\n    slow: slow\n    gpu: gpu\n    browser: browser\n")
    return pytester


def test_a_skip_fails_the_run_when_all_tests_are_required(guarded):
    guarded.makepyfile(test_a=TESTS)
    result = guarded.runpytest("--require-all", "-rs")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, skipped=1, xfailed=1)
    result.stdout.fnmatch_lines([
        "*--require-all: 1 skipped, none allowed*",
        "SKIPPED test_a.py::test_needs_a_missing_module: could not import 'no_such_module_turbonext_ci'*",
    ])


def test_the_environment_variable_requires_them_too(guarded, monkeypatch):
    guarded.makepyfile(test_a=TESTS)
    monkeypatch.setenv("TURBONEXT_REQUIRE_ALL", "1")
    assert guarded.runpytest().ret == pytest.ExitCode.TESTS_FAILED
    monkeypatch.setenv("TURBONEXT_REQUIRE_ALL", "0")
    assert guarded.runpytest().ret == pytest.ExitCode.OK


def test_skips_pass_when_not_required(guarded):
    guarded.makepyfile(test_a=TESTS)
    result = guarded.runpytest("-rs")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1, skipped=1, xfailed=1)
    assert "--require-all" not in result.stdout.str()


def test_a_module_level_skip_counts(guarded):
    # as tests/test_app.py does with gradio: the whole module is skipped while collecting
    guarded.makepyfile(test_app_like='import pytest\ngr = pytest.importorskip("no_such_module_turbonext_ci")\n'
                                     "def test_app():\n    pass\n",
                       test_b="def test_b():\n    pass\n")
    result = guarded.runpytest("--require-all")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["SKIPPED test_app_like.py: could not import*"])


def test_deselected_tests_do_not_count_and_gpu_tests_are_deselected_unless_asked_for(guarded):
    guarded.makepyfile(test_m="""
import pytest

@pytest.mark.slow
def test_slow():
    pytest.skip("would skip if it ran")

@pytest.mark.gpu
def test_gpu():
    pytest.skip("no GPU here")

def test_quick():
    pass
""")
    result = guarded.runpytest("--require-all", "-m", "not slow")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1, deselected=2)
    result = guarded.runpytest("--require-all")  # slow tests run by default, gpu ones do not
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, skipped=1, deselected=1)
    result = guarded.runpytest("-m", "gpu")
    result.assert_outcomes(skipped=1, deselected=2)


def test_browser_tests_are_deselected_unless_asked_for(guarded):
    guarded.makepyfile(test_m="""
import pytest

@pytest.mark.browser
def test_browser():
    pytest.fail("no Chromium here")

@pytest.mark.gpu
def test_gpu():
    pass

def test_quick():
    pass
""")
    result = guarded.runpytest("--require-all")  # the README's run: neither runs, neither counts as a skip
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1, deselected=2)
    result = guarded.runpytest("-m", "browser")  # asked for: it runs (and here fails, as a missing browser does)
    result.assert_outcomes(failed=1, deselected=2)
    result = guarded.runpytest("-m", "browser or gpu")
    result.assert_outcomes(passed=1, failed=1, deselected=1)


def test_ci_runs_the_readme_test_command_and_ruff():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    section = readme[readme.index("Run the tests"):]
    command = re.search(r"```bash\n(.+?)\n```", section, re.S).group(1).strip()
    assert "--require-all" in command and re.search(r" -r[a-zA-Z]*s", command)  # skips fail, with reasons
    assert command in ci.splitlines(), f".ci/run does not run the README's test command: {command}"
    assert "venv --clear" in ci and re.search(r"^ruff check \.", ci, re.M)
