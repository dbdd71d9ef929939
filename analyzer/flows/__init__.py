"""Flows: the flow table and per-direction TCP reassembly."""

from analyzer.flows.reassembly import SEQ_MASK, Reassembler, seq_diff

__all__ = ["SEQ_MASK", "Reassembler", "seq_diff"]
