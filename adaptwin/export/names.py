"""Names shared by the exporter and its options (no heavy imports: the CLI parser loads this)."""

PRECISIONS = ("fp32", "fp16", "int8")
GRAPHS = ("encoder_model", "decoder_model", "decoder_with_past_model", "decoder_model_merged")
