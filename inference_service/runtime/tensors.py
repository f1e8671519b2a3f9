"""The served model's tensor names: the predictor declares them in its metadata, the clients read them."""

INPUT = "features"
PROBABILITIES, LABEL = "probabilities", "label"
LABEL_AS_INDEX = "label_as_index"  # request parameter: `label` as INT64 class indices instead of names
