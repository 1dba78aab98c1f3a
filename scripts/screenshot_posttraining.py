"""Screenshots of the Post-training tab for docs/screenshots: base vs instruct side by side, the
loss-mask view, and the before/after table after an SFT run (STEPS, default the tab's 50).
Run the app first (`python app.py --offline --port 7899`), then
`python scripts/screenshot_posttraining.py [URL] [STEPS]`."""
from __future__ import annotations

import sys

from shots import OUT, chromium_page
from screenshot_lora import view_from


def main(url: str = "http://127.0.0.1:7899/", steps: str = "", only_after: str = "") -> None:
    with chromium_page(height=1000, timeout_ms=1_500_000) as page:
        page.goto(url + "?tab=posttraining" + (f"&steps={int(steps)}" if steps else ""))
        if only_after:
            return after(page)
        page.get_by_role("button", name="Ask all three").click()
        page.wait_for_function("() => (document.querySelector('#sft-inst-chat textarea') || {}).value")
        view_from(page, page.get_by_role("tab", name="Base vs instruct"), OUT / "posttraining_side_by_side.png")

        page.get_by_role("tab", name="SFT: training format and loss mask").click()
        page.get_by_role("button", name="Render and compute both losses").click()
        page.locator("#sft-mask h4").first.wait_for()
        view_from(page, page.get_by_role("tab", name="SFT: training format and loss mask"),
                  OUT / "posttraining_loss_mask.png")

        after(page)


def after(page) -> None:
    page.get_by_role("tab", name="SFT: train and compare").click()
    page.get_by_role("button", name="Train SFT adapter").click()
    page.wait_for_function("() => /Done|Stopped/.test(document.querySelector('#sft-status').innerText)",
                           timeout=1_500_000)  # a busy CPU may reach the time cap first
    page.get_by_role("button", name="Score base vs tuned").click()
    page.locator("#sft-score").get_by_text("Exact answer", exact=False).first.wait_for()
    view_from(page, page.locator("#sft-score"), OUT / "posttraining_before_after.png", offset=60)


if __name__ == "__main__":
    main(*sys.argv[1:])
