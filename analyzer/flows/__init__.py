"""The TCP transport: the flow table, per-direction reassembly, and the connection that
feeds each direction's TLS bytes to its handshake core (:mod:`analyzer.flows.tcp`)."""

from analyzer.flows.reassembly import MAX_WINDOW, SEQ_MASK, Reassembler, seq_diff

__all__ = ["MAX_WINDOW", "SEQ_MASK", "Reassembler", "seq_diff"]
