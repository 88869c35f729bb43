"""Pack video datasets into verified webdataset shards for DALI (build, verify, inspect, synth)."""
