"""Gallery page content: escaping, quoting, preview choice, atomic write (no browser needed)."""
import html
import re

from animate.outputs.gallery import choose_preview, href, render_gallery, write_gallery

ENTRY = {"name": "castle", "seed": 42, "prompt": "a <b>castle</b> & \"moat\"",
         "params": {"steps": 6, "guidance": 1.5, "adapters": {"lcm": 1.0}},
         "preview": "castle.gif", "outputs": ["castle.gif", "castle.mp4", "castle"], "sidecar": "castle.json"}


def test_prompt_and_params_are_escaped():
    page = render_gallery([ENTRY, {**ENTRY, "name": "x</h2><script>alert(1)</script>",
                                   "prompt": {12: "<i>late</i>", 0: "early & on"}}])
    assert "<b>" not in page and "<script>" not in page and "<i>" not in page
    assert html.escape('a <b>castle</b> & "moat"') in page
    assert page.index("early &amp; on") < page.index("&lt;i&gt;late")  # keyframes in frame order
    assert '<td>guidance</td><td>1.5</td>' in page and "{&quot;lcm&quot;: 1.0}" in page


def test_every_output_and_the_sidecar_are_linked():
    page = render_gallery([ENTRY])
    links = re.findall(r'<a href="([^"]+)">', page)
    assert links == ["castle.gif", "castle.mp4", "castle", "castle.json"]
    assert ">castle/</a>" in page  # the PNG sequence folder
    assert '<img src="castle.gif"' in page and "2 clips" not in page and "1 clip" in page


def test_links_are_url_quoted_relative_paths():
    assert href("odd name#1?.gif") == "odd%20name%231%3F.gif"
    assert href("sub/dir/a.gif") == "sub/dir/a.gif"
    assert href("javascript:alert(1)") == "javascript%3Aalert%281%29"  # never a scheme
    page = render_gallery([{**ENTRY, "preview": "a&b.gif", "outputs": ['a"b.gif']}])
    assert 'src="a%26b.gif"' in page and 'href="a%22b.gif"' in page


def test_preview_choice():
    assert choose_preview("c.gif", ["c.gif", "c.mp4"]) == ("img", ["c.gif"])
    # Video previews list WebM before MP4: Chromium builds without H.264 still play the clip.
    assert choose_preview("c.mp4", ["c.mp4", "c.webm", "c.gif"]) == ("video", ["c.webm", "c.mp4"])
    assert choose_preview(None, ["c.mov", "c.mp4", "c.gif"]) == ("img", ["c.gif"])
    assert choose_preview(None, ["c.mkv", "c.mp4"]) == ("video", ["c.mp4"])
    assert choose_preview(None, ["c.mov", "c"]) == ("none", [])
    page = render_gallery([{**ENTRY, "preview": "c.mp4", "outputs": ["c.mp4", "c.webm"]}])
    assert ('<video autoplay loop muted playsinline aria-label="castle seed 42">'
            '<source src="c.webm" type="video/webm"><source src="c.mp4" type="video/mp4"></video>') in page
    assert "no preview" in render_gallery([{**ENTRY, "preview": None, "outputs": ["c.mov"]}])


def test_preview_box_follows_the_clip_size():
    assert 'style="aspect-ratio: 512 / 768"' in render_gallery([{**ENTRY, "width": 512, "height": 768}])
    assert "aspect-ratio: " not in render_gallery([{**ENTRY, "width": "5;x", "height": 2}]).split("</style>")[1]


def test_page_is_self_contained():
    page = render_gallery([ENTRY])
    assert "<link" not in page and "<script" not in page and "@import" not in page and "url(" not in page
    assert '<meta charset="utf-8">' in page


def test_write_gallery_into_a_folder_atomically(tmp_path):
    path = write_gallery(tmp_path, [ENTRY], title="my <script>")
    assert path == tmp_path / "index.html"
    assert [p.name for p in tmp_path.iterdir()] == ["index.html"]
    text = path.read_text(encoding="utf-8")
    assert "<title>my &lt;script&gt;</title>" in text
    write_gallery(tmp_path, [])
    assert "0 clips" in path.read_text(encoding="utf-8")
