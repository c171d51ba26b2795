"""The plugin benchmark's pieces (vsjpegfix.vapoursynth.bench): vspipe's progress output, the source graph, the
.vpy script. (A whole run restores 1280x720 frames several times over: too slow for the tests.)"""

import pytest

vs = pytest.importorskip("vapoursynth")

from vsjpegfix.vapoursynth.bench import (  # noqa: E402
    HEIGHT,
    WIDTH,
    BenchError,
    parse_vspipe,
    source_code,
    write_vpy,
)


def test_parse_vspipe():
    err = "Script evaluation done in 2.50 seconds\nOutput 24 frames in 12.34 seconds (1.94 fps)\n"
    assert parse_vspipe(err) == {"frames": 24, "output_s": 12.34, "vspipe_fps": 1.94, "evaluation_s": 2.5}
    assert parse_vspipe("Output 1 frames in 0.50 seconds (2.00 fps)")["evaluation_s"] is None
    with pytest.raises(BenchError, match="cannot parse"):
        parse_vspipe("Error: something broke")


def test_source_graph_and_script(tmp_path):
    core = vs.core
    scope = {"vs": vs, "core": core}
    exec(source_code(3, str(tmp_path / "cache")), scope)
    clip = scope["clip"]
    assert (clip.width, clip.height, clip.num_frames, clip.format.id) == (WIDTH, HEIGHT, 3, vs.YUV420P8.value)
    assert scope["content"]
    frame = clip.get_frame(2)
    assert frame.props["_Matrix"] == 1 if "bikes" in scope["content"] else True
    write_vpy(tmp_path / "b.vpy", "fastarcnn", 3, 1, 2, 1, str(tmp_path / "cache"))
    text = (tmp_path / "b.vpy").read_text()
    assert "vp.fastarcnn(clip, model='fastarcnn', device='cpu', num_streams=2, batch_size=1).set_output()" in text
    compile(text, "b.vpy", "exec")
