"""Exported policies (NAME.onnx + NAME.json + NAME.toml), installed as ``liveagent.export``."""
