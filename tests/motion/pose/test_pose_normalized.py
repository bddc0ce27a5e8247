"""OpenPose JSON in fractions (--keypoint_scale 3: [0, 1], 4: [-1, 1]) draws the skeleton the same pose in
pixels draws, and a pose source whose skeletons come out specks is refused with one line."""
import numpy as np
import pytest

from motion.errors import PoseSourceError
from motion.pose import openpose_json, pose_frames, pose_keypoints
from pose_helpers import person, write_openpose

CANVAS = (256, 128)  # powers of two: fractions of it are exact in float32, so the drawings match bit for bit
BODY = dict(nose=(128, 20), neck=(128, 36), r_shoulder=(112, 36), r_elbow=(104, 56), r_wrist=(100, 76),
            l_shoulder=(144, 36), l_elbow=(152, 56), l_wrist=(156, 76), r_hip=(118, 76), r_knee=(116, 100),
            r_ankle=(114, 122), l_hip=(138, 76), l_knee=(140, 100), l_ankle=(142, 122), r_eye=(124, 16),
            l_eye=(132, 16), r_ear=(120, 18), l_ear=(136, 18))


def body(scale: str, dx: float = 0.0):
    """The BODY person (moved right by dx px) in pixels of CANVAS, or in OpenPose's fraction scales."""
    w, h = CANVAS
    convert = {"pixels": lambda x, y: (x, y), "unit": lambda x, y: (x / w, y / h),
               "signed": lambda x, y: (x / w * 2 - 1, y / h * 2 - 1)}[scale]
    return person(**{name: (*convert(x + dx, y), 0.9) for name, (x, y) in BODY.items()})


def draw(path, **opts):
    return pose_frames(str(path), frames=2, fps=8, width=64, height=48, cache_dir=path.parent / "cache", **opts)


@pytest.mark.parametrize("scale", ["unit", "signed"])
@pytest.mark.parametrize("canvas_in_file", [True, False])
def test_fractions_draw_the_pixel_skeleton(tmp_path, scale, canvas_in_file):
    frames = [[body("pixels")], [body("pixels", dx=20)]]
    pixels = draw(write_openpose(tmp_path / "px.json", frames, canvas=CANVAS))
    fractions = [[body(scale)], [body(scale, dx=20)]]
    canvas = CANVAS if canvas_in_file else None
    opts = {} if canvas_in_file else {"canvas": list(CANVAS)}  # the canvas as an option instead of in the file
    drawn = draw(write_openpose(tmp_path / f"{scale}.json", fractions, canvas=canvas), **opts)
    assert openpose_json.coordinate_scale(openpose_json.parse_poses(tmp_path / f"{scale}.json")[0]) == scale
    for a, b in zip(pixels, drawn):
        assert (a.max(axis=-1) > 0).mean() > 0.05  # a whole skeleton, not a speck
        assert np.array_equal(a, b)
    assert not np.array_equal(drawn[0], drawn[1])  # the second frame moved


@pytest.mark.parametrize("scale", ["unit", "signed"])
def test_fractions_without_any_canvas_fill_the_output_frame(tmp_path, scale):
    # No canvas anywhere: fractions are of the output frame (what a canvas the output's size in pixels gives).
    out = (64, 48)
    w, h = CANVAS
    as_output = [[person(**{n: (x / w * out[0], y / h * out[1], 0.9) for n, (x, y) in BODY.items()})]]
    pixels = draw(write_openpose(tmp_path / "px.json", as_output, canvas=out))
    drawn = draw(write_openpose(tmp_path / "f.json", [[body(scale)]]))
    assert np.array_equal(pixels[0], drawn[0])


def test_the_scale_rule():
    def scale_of(*points):
        return openpose_json.coordinate_scale([np.array([[[x, y, c] for x, y, c in points]], np.float32)])

    assert scale_of((0.2, 0.5, 0.9), (0.6, 1.0, 0.8)) == "unit"
    assert scale_of((-0.2, 0.5, 0.9), (0.6, 1.0, 0.8)) == "signed"
    assert scale_of((12, 40, 0.9), (0.5, 0.5, 0.9)) == "pixels"
    assert scale_of((-3, 40, 0.9), (80, 100, 0.9)) == "pixels"  # off-canvas pixels are still pixels
    assert scale_of((0.5, 0.5, 0.9), (300, 200, 0.0)) == "unit"  # a missing point (confidence 0) doesn't count


def test_a_speck_sized_pose_is_refused(tmp_path):
    # A 1080p video's keypoints read against a 4x larger canvas: the figure spans 1.6% of the frame.
    tiny = person(**{name: (x / 16, y / 16, 0.9) for name, (x, y) in BODY.items()})
    src = write_openpose(tmp_path / "speck.json", [[tiny]], canvas=(512, 512))
    with pytest.raises(PoseSourceError) as info:
        draw(src)
    message = str(info.value)
    assert "\n" not in message and str(src) in message
    assert "cover almost nothing of the 64x48 frame" in message and "at least 5% is needed" in message
    assert "set the pose `canvas: [width, height]`" in message
    # `animate poses` exports the same keypoints: refused the same way.
    with pytest.raises(PoseSourceError, match="cover almost nothing"):
        pose_keypoints(str(src), frames=2, fps=8, width=64, height=48)
    # The same figure with its real canvas draws.
    assert draw(src, canvas=[32, 32])[0].any()


def test_speck_skeleton_images_are_refused_and_black_ones_left_alone(tmp_path):
    from PIL import Image

    image = np.zeros((480, 640, 3), np.uint8)
    image[200:204, 300:304] = (255, 0, 0)  # another tool's skeleton drawn as a dot
    Image.fromarray(image).save(tmp_path / "dot.png")
    with pytest.raises(PoseSourceError, match="cover almost nothing"):
        draw(tmp_path / "dot.png")
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(tmp_path / "black.png")
    assert not draw(tmp_path / "black.png")[0].any()  # an empty pose frame is drawn as before


def test_render_stops_on_a_speck_with_one_line(kit, tmp_path):
    import yaml
    from click.testing import CliRunner

    from animate.cli import main
    from cli_helpers import assert_one_error_line

    # The case: a [0, 1] export whose file also names the pixel canvas used to be drawn as a speck; now
    # fractions are scaled, so the speck here is pixels of a 1920x1080 video read against a 4x larger canvas.
    tiny = person(**{name: (x / 8, y / 8, 0.9) for name, (x, y) in BODY.items()})
    write_openpose(tmp_path / "speck.json", [[tiny]], canvas=(7680, 4320))
    script = tmp_path / "dance.yaml"
    script.write_text(yaml.safe_dump({"version": 1, "defaults": {
        "preset": "tiny", "frames": 4, "width": 32, "height": 32, "steps": 1, "outputs": ["png"]},
        "clips": [{"name": "dance", "prompt": "a dancer", "pose": {"source": "speck.json", "controlnet": "tiny"}}]}))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["render", str(script), "--out", str(out), "--quiet", "--device", "cpu"])
    assert_one_error_line(result, out, "clip dance", "pose.source", "speck.json", "cover almost nothing",
                          "set the pose `canvas: [width, height]`")
