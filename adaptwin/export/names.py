"""Names shared by the exporter and its options (no heavy imports: the CLI parser loads this)."""

PRECISIONS = ("fp32", "fp16", "int8")
GRAPHS = ("encoder_model", "decoder_model", "decoder_with_past_model", "decoder_model_merged")
# int8 weights quantized in 8-bit blocks (MatMulNBits, activations per block) rather than per
# channel (MatMulInteger, one activation scale per tensor): the second FFN matrices; those and
# every decoder weight, the logits (and so the token lookup) included; every weight. "auto":
# "all" for a model that learnt a dynamic audio context (its encoder runs on short windows, so
# exactness there is cheap), else "decoder"
INT8_BLOCKS = ("auto", "ffn", "decoder", "all")
