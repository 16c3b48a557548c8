"""Discovery (SPEC §12): the behaviour catalogue, rankings for one claim, and the hypothesis
file written from them."""
