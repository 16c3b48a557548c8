"""ONNX exports as models (SPEC §15): where an export is (`locate`), which of its tensors are
the attention probabilities of each layer (`graph`), and the model that runs it in onnxruntime
(`runner`). onnx and onnxruntime are imported only when an export is used (the ``onnx`` extra).
"""
