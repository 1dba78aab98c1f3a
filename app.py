"""LLM Playground: one Gradio app, a tab per topic. `python app.py --help` for the flags.

Importing this module loads no model: build_demo() only lays out the tabs, and every model
loads on first use through the engine's cache."""
from __future__ import annotations

import argparse
import os

import gradio as gr

import tabs

CSS = """
.notice { font-size: 0.95em; opacity: 0.85; }
footer { display: none !important; }
"""


def build_demo(engine) -> gr.Blocks:
    with gr.Blocks(title="LLM Playground") as demo:
        with gr.Tabs():
            for module in tabs.available():
                with gr.Tab(module.TITLE, id=module.__name__.split(".")[-1]):
                    module.build(engine)
    demo.queue(default_concurrency_limit=4, max_size=64)
    return demo


def launch_kwargs() -> dict:
    return dict(theme=gr.themes.Soft(), css=CSS)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="LLM Playground")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    p.add_argument("--share", action="store_true", help="create a public gradio.live link (off by default)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--offline", action="store_true", help="never use the Hub; embedded models only")
    p.add_argument("--cache-gb", type=float, default=None, help="model cache budget in GiB")
    return p.parse_args(argv)


def main(argv=None) -> None:
    from engine import Engine

    args = parse_args(argv)
    cache_bytes = int(args.cache_gb * 1024**3) if args.cache_gb else None
    engine = Engine(device=args.device, offline=True if args.offline else None, cache_bytes=cache_bytes)
    print(f"LLM Playground on {engine.device.describe()}; {engine.registry.reason}")
    demo = build_demo(engine)
    password = os.environ.get("LLM_PLAYGROUND_PASSWORD")
    auth = (os.environ.get("LLM_PLAYGROUND_USER", "student"), password) if password else None
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, auth=auth,
                max_file_size="20mb", **launch_kwargs())


if __name__ == "__main__":
    main()
