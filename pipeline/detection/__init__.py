"""The runtime around `detectors/`: training and detection over a store (`store`), replay
of files (`replay`), live detection of a streaming member (`live`, with the late-event
`ledger`), the one embedded runtime (`embedded`), and the `checkpoint` every piece of
detection state is stored as."""
