"""The browser has fonts for emoji and CJK text (scripts/install.sh --test installs Debian's
fonts-noto-color-emoji and fonts-noto-cjk), so the browser tests and the screenshots show what
a user's browser shows, not a row of empty boxes ("tofu")."""
import pytest

# Draw one character in the app's own font stack on a canvas; return its pixels' summary.
GLYPH_JS = """(ch) => {
  const c = document.createElement('canvas'); c.width = 64; c.height = 64;
  const g = c.getContext('2d', {willReadFrequently: true});
  g.fillStyle = '#fff'; g.fillRect(0, 0, 64, 64);
  g.fillStyle = '#000'; g.textBaseline = 'middle';
  g.font = '40px ' + getComputedStyle(document.body).fontFamily;
  const width = g.measureText(ch).width;
  g.fillText(ch, 8, 32);
  const d = g.getImageData(0, 0, 64, 64).data;
  let ink = 0, colour = 0, sig = [];
  for (let i = 0; i < d.length; i += 4) {
    const [r, gr, b] = [d[i], d[i + 1], d[i + 2]];
    if (r < 250 || gr < 250 || b < 250) ink++;
    if (Math.max(r, gr, b) - Math.min(r, gr, b) > 40) colour++;
    sig.push(r < 128 ? 1 : 0);
  }
  return {width, ink, colour, sig: sig.join('')};
}"""
MISSING = "\ue000"  # a private-use code point no font here draws: the fallback box


@pytest.mark.browser
def test_emoji_and_cjk_render_as_real_glyphs(page, app_url):
    page.goto(app_url)
    page.locator("#lesson-cards").wait_for(timeout=30_000)
    tofu = page.evaluate(GLYPH_JS, MISSING)
    emoji, cjk = page.evaluate(GLYPH_JS, "🦙"), page.evaluate(GLYPH_JS, "東")
    for name, glyph in (("🦙", emoji), ("東", cjk)):
        assert glyph["width"] > 0 and glyph["ink"] > 0, (name, glyph["width"], glyph["ink"])
        as_tofu = glyph["sig"] == tofu["sig"]
        assert not as_tofu, f"{name} is drawn as the missing-glyph box: run bash scripts/install.sh --test"
    assert emoji["sig"] != cjk["sig"]
    assert emoji["colour"] > 50, "the llama is not in colour: fonts-noto-color-emoji is missing"
