"""The GIF encoder's thread pool (dithering, k-means chunks, LZW) writes the same bytes as one thread."""
import numpy as np

from animate.encode import gif


def _clip(frames=10, h=72, w=96):
    rng = np.random.default_rng(5)
    base = rng.integers(0, 256, (h, w * 2, 3)).astype(np.float32)
    base = (base + np.roll(base, 1, 0) + np.roll(base, 1, 1)) / 3  # some structure for the palette
    return np.stack([np.roll(base, 3 * i, axis=1)[:, :w] for i in range(frames)]).astype(np.uint8)


def test_threads_give_the_same_bytes(tmp_path, monkeypatch):
    frames = _clip()
    out = {}
    for threads in ("1", "3"):
        monkeypatch.setenv("ANIMATE_ENCODE_THREADS", threads)
        assert gif.encode_threads() == int(threads)
        path = tmp_path / f"t{threads}.gif"
        gif.encode_gif(frames, path, fps=8)
        out[threads] = path.read_bytes()
    assert out["1"] == out["3"] and len(out["1"]) > 1000


def test_nearest_in_place_equals_the_plain_formula(monkeypatch):
    rng = np.random.default_rng(1)
    points = rng.integers(0, 256, (120_000, 3)).astype(np.float32)
    pal = rng.integers(0, 256, (200, 3)).astype(np.float32)
    pn = (pal ** 2).sum(1)
    want = np.concatenate([np.argmin(pn[None, :] - 2 * points[i:i + 50_000] @ pal.T, axis=1)
                           for i in range(0, len(points), 50_000)])
    for threads in ("1", "2"):
        monkeypatch.setenv("ANIMATE_ENCODE_THREADS", threads)
        assert np.array_equal(gif._nearest(points, pal), want)


def test_parallel_map_keeps_order(monkeypatch):
    monkeypatch.setenv("ANIMATE_ENCODE_THREADS", "4")
    assert gif.parallel_map(lambda x: x * x, range(20)) == [x * x for x in range(20)]
