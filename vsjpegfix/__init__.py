"""vsjpegfix: CNN deblocking and compression-artifact removal for video (FBCNN, ARCNN, Fast ARCNN)."""

__version__ = "0.1.0"
