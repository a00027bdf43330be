"""Pre-activation ResNets: pure specs (``spec``) and torch modules (``preact``)."""
