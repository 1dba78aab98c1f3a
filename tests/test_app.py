"""The app as a user of its API sees it: launched once, driven through gradio_client."""
import subprocess
import sys
import urllib.request

import pytest

from tests.conftest import ROOT


def test_import_and_build_load_no_model():
    code = ("import app, sys\n"
            "from engine import Engine\n"
            "e = Engine(device='cpu', offline=True)\n"
            "app.build_demo(e)\n"
            "assert e.cache.stats()['misses'] == 0, e.cache.stats()\n"
            "assert not any(m.startswith('diffusers') for m in sys.modules)\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


def test_flags_parse():
    import app

    args = app.parse_args(["--host", "0.0.0.0", "--port", "7999", "--device", "cpu", "--offline", "--share"])
    assert (args.host, args.port, args.device, args.offline, args.share) == ("0.0.0.0", 7999, "cpu", True, True)
    defaults = app.parse_args([])
    assert (defaults.host, defaults.port, defaults.share, defaults.offline) == ("127.0.0.1", 7860, False, False)
    with pytest.raises(SystemExit):
        app.parse_args(["--device", "tpu"])


def test_page_is_served(app_url):
    with urllib.request.urlopen(app_url, timeout=10) as r:
        assert r.status == 200
        assert "LLM Playground" in r.read().decode()


def test_engine_status_endpoint(client, engine):
    status_md, table = client.predict(api_name="/engine_status")
    assert "Device:" in status_md and "cpu" in status_md and "float32" in status_md
    assert "hits" in status_md and "evictions" in status_md
    assert "`smollm2-135m-instruct`" in table and "`minilm-l6`" in table
    assert "embedded (offline)" in table


def test_every_listener_has_an_api_name(app_url, engine):
    import app

    demo = app.build_demo(engine)
    missing = [fn.name for fn in demo.fns.values() if fn.api_name in (None, False) and fn.show_api]
    assert not missing, f"listeners without api_name: {missing}"


def test_a_deep_link_number_that_is_nan_or_inf_is_refused_not_put_in_a_slider():
    """float() accepts 'nan' and 'inf'; a slider given NaN reaches listeners as None and Gradio's
    preprocessing fails with its own error. Such a link value is ignored like any other bad one."""
    import gradio as gr
    import pytest

    import app

    slider = gr.Slider(0, 1, value=0.5)
    for raw in ("nan", "NaN", "inf", "-inf"):
        with pytest.raises(ValueError):
            app._coerce(slider, raw)
    assert app._coerce(slider, "0.25") == 0.25 and app._coerce(slider, "1") == 1
