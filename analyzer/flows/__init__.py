"""Flows: the flow table and per-direction TCP reassembly."""

from analyzer.flows.reassembly import MAX_WINDOW, SEQ_MASK, Reassembler, seq_diff

__all__ = ["MAX_WINDOW", "SEQ_MASK", "Reassembler", "seq_diff"]
