"""The operator's settings (engine/core/config.py): one frozen AppConfig read once from flags,
then the environment, then the defaults; one on/off reading; one ranged-number reading whose
errors name the setting, the value and the range; the README's table made from the fields."""
from __future__ import annotations

import dataclasses
import os
import re

import pytest

from engine.core.config import (AppConfig, build_parser, child_env, flag_table, mark_offline, ranged_number,
                                temporary_env, truthy)
from engine.core.errors import UserInputError
from tests.conftest import ROOT


def test_readme_table_is_the_generated_one():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- flags:start -->\n(.*?)\n<!-- flags:end -->", text, re.S)
    assert block, "README has no <!-- flags:start --> block"
    assert block.group(1) == flag_table(), "run: .venv/bin/python scripts/update_readme.py"


def test_every_field_has_help_and_every_flag_is_in_the_parser():
    flags = {a.option_strings[0] for a in build_parser()._actions if a.option_strings[0] != "-h"}
    fields = dataclasses.fields(AppConfig)
    assert flags == {f.metadata["flag"] for f in fields if f.metadata["flag"]}
    for f in fields:
        assert f.metadata["help"] and (f.metadata["flag"] or f.metadata["env"]), f.name


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", " yes ", "on", "On", True])
def test_truthy_words(raw):
    assert truthy(raw) is True


@pytest.mark.parametrize("raw", [None, "", "0", "false", "no", "off", "2", "enabled", False])
def test_anything_else_is_off(raw):
    assert truthy(raw) is False


def test_ranged_number_reads_numbers_in_range():
    assert ranged_number("X", "2.5", 0, 10) == 2.5
    assert ranged_number("X", " 7 ", 1, 100, integer=True) == 7
    assert ranged_number("X", 10, 0, 10, low_open=True) == 10
    assert ranged_number("X", "1e2", 1, 100, integer=True) == 100


@pytest.mark.parametrize("raw, why", [("nan", "not a finite number"), ("NaN", "not a finite number"),
                                      ("inf", "not a finite number"), ("-inf", "not a finite number"),
                                      ("abc", "not a number"), ("", "not a number"), ("0", "out of range"),
                                      ("-1", "out of range"), ("1441", "out of range")])
def test_ranged_number_names_the_setting_the_value_and_the_range(raw, why):
    with pytest.raises(UserInputError) as err:
        ranged_number("LLM_PLAYGROUND_TRAIN_MINUTES", raw, 0, 1440, low_open=True)
    message = str(err.value)
    assert "LLM_PLAYGROUND_TRAIN_MINUTES" in message and repr(raw) in message and why in message
    assert "above 0 and at most 1440" in message


def test_a_whole_number_setting_refuses_a_fraction():
    with pytest.raises(UserInputError, match=r"GRADIO_SERVER_PORT = '80.5' is not a whole number: .*1 to 65535"):
        ranged_number("GRADIO_SERVER_PORT", "80.5", 1, 65535, integer=True)


def test_defaults_without_flags_or_environment():
    config = AppConfig.from_sources([], {})
    assert config == AppConfig()
    assert (config.host, config.port, config.share, config.device, config.offline) == ("127.0.0.1", 7860, False,
                                                                                        "auto", False)
    assert config.train_minutes == 5.0 and config.cache_gb is None and config.openai_url == ""
    assert config.models == () and config.class_db is None
    assert config.class_db_url.startswith("sqlite:///") and config.class_db_url.endswith("classroom.sqlite3")


def test_environment_beats_defaults_and_flags_beat_environment():
    env = {"GRADIO_SERVER_PORT": "8001", "GRADIO_SERVER_NAME": "0.0.0.0", "LLM_PLAYGROUND_TRAIN_MINUTES": "3",
           "LLM_PLAYGROUND_CACHE_GB": "2", "LLM_PLAYGROUND_OPENAI_URL": "http://a:1/v1",
           "LLM_PLAYGROUND_OPENAI_FALLBACK": "yes", "LLM_PLAYGROUND_MODELS": "org/a, org/b,",
           "LLM_PLAYGROUND_CLASS_DB": "sqlite:///x.db", "HF_HUB_OFFLINE": "1", "SPACES_ZERO_GPU": "true"}
    from_env = AppConfig.from_sources([], env)
    assert (from_env.port, from_env.host, from_env.train_minutes, from_env.cache_gb) == (8001, "0.0.0.0", 3.0, 2.0)
    assert from_env.openai_url == "http://a:1/v1" and from_env.openai_fallback is True
    assert from_env.models == ("org/a", "org/b") and from_env.class_db == "sqlite:///x.db"
    assert from_env.hub_offline and from_env.zero_gpu
    flags = ["--port", "9000", "--host", "127.0.0.2", "--train-minutes", "0.5", "--cache-gb", "1.5",
             "--openai-url", "", "--model", "org/c", "--model", "org/d", "--class-db", "postgresql://db/x"]
    both = AppConfig.from_sources(flags, env)
    assert (both.port, both.host, both.train_minutes, both.cache_gb) == (9000, "127.0.0.2", 0.5, 1.5)
    assert both.openai_url == "" and both.models == ("org/c", "org/d") and both.class_db == "postgresql://db/x"


def test_an_empty_variable_counts_as_unset():
    config = AppConfig.from_sources([], {"GRADIO_SERVER_PORT": "", "LLM_PLAYGROUND_CACHE_GB": ""})
    assert config.port == 7860 and config.cache_gb is None


@pytest.mark.parametrize("argv, env, named", [
    ([], {"LLM_PLAYGROUND_TRAIN_MINUTES": "nan"}, "LLM_PLAYGROUND_TRAIN_MINUTES = 'nan'"),
    (["--train-minutes", "0"], {"LLM_PLAYGROUND_TRAIN_MINUTES": "3"}, "--train-minutes = '0'"),
    ([], {"LLM_PLAYGROUND_CACHE_GB": "lots"}, "LLM_PLAYGROUND_CACHE_GB = 'lots'"),
    (["--port", "70000"], {}, "--port = '70000'"),
    ([], {"LLM_PLAYGROUND_OPENAI_TOP_LOGPROBS": "0"}, "LLM_PLAYGROUND_OPENAI_TOP_LOGPROBS = '0'"),
    (["--openai-url", "localhost:8000"], {}, "--openai-url = 'localhost:8000' must start with http"),
    ([], {"LLM_PLAYGROUND_QDRANT_URL": "ftp://x"}, "LLM_PLAYGROUND_QDRANT_URL = 'ftp://x' must start with http"),
])
def test_a_bad_setting_stops_the_start_naming_where_it_came_from(argv, env, named):
    with pytest.raises(UserInputError) as err:
        AppConfig.from_sources(argv, env)
    assert named in str(err.value)


def test_a_bad_flag_exits_as_argparse_does():
    with pytest.raises(SystemExit):
        AppConfig.from_sources(["--device", "tpu"], {})


def test_the_config_is_frozen_and_keeps_secrets_out_of_its_repr():
    config = AppConfig.from_sources([], {"LLM_PLAYGROUND_PASSWORD": "s3cret", "LLM_PLAYGROUND_QDRANT_API_KEY": "k3y",
                                         "LLM_PLAYGROUND_OPENAI_API_KEY": "t0ken"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.port = 1
    assert config.password == "s3cret" and config.user == "student"
    assert not any(secret in repr(config) for secret in ("s3cret", "k3y", "t0ken"))


def test_the_engine_takes_its_settings_from_the_config():
    from engine import Engine

    config = AppConfig(device="cpu", offline=True, cache_gb=0.5, openai_url="http://127.0.0.1:9/",
                       openai_top_logprobs=7, openai_fallback=True)
    engine = Engine(config=config)
    assert engine.config is config and engine.device.kind == "cpu" and not engine.online
    assert engine.cache.budget_bytes == 2**29
    assert (engine.serving.url, engine.serving.top_logprobs, engine.serving.fallback) == ("http://127.0.0.1:9/v1", 7,
                                                                                         True)
    with pytest.raises(TypeError):
        Engine(device="cpu", config=config)


def test_an_engine_built_from_keywords_gets_a_default_config(engine):
    assert engine.config == AppConfig(device="cpu", offline=True)
    assert not engine.serving.enabled


def test_hub_offline_setting_makes_the_engine_offline():
    from engine import Engine

    engine = Engine(config=AppConfig(device="cpu", hub_offline=True), probe=lambda: True)
    assert (engine.online, engine.registry.reason) == (False, "offline: HF_HUB_OFFLINE is set")


def test_child_env_copies_without_touching_this_process():
    before = dict(os.environ)
    env = child_env(LLM_PLAYGROUND_TEST_CHILD="1")
    assert env["LLM_PLAYGROUND_TEST_CHILD"] == "1" and env.get("PATH") == os.environ.get("PATH")
    assert dict(os.environ) == before


def test_temporary_env_puts_back_what_was_there(monkeypatch):
    monkeypatch.delenv("LLM_PLAYGROUND_TEST_TMP", raising=False)
    with temporary_env("LLM_PLAYGROUND_TEST_TMP", "a"):
        assert os.environ["LLM_PLAYGROUND_TEST_TMP"] == "a"
    assert "LLM_PLAYGROUND_TEST_TMP" not in os.environ
    monkeypatch.setenv("LLM_PLAYGROUND_TEST_TMP", "old")
    with pytest.raises(RuntimeError):
        with temporary_env("LLM_PLAYGROUND_TEST_TMP", "new"):
            raise RuntimeError
    assert os.environ["LLM_PLAYGROUND_TEST_TMP"] == "old"


def test_mark_offline_sets_the_hub_switches(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    mark_offline()
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
