"""Where frames come from: capture files (pcap, pcapng, gzip) and, later, live capture.

Every source yields :class:`Frame` values (timestamp, link type, bytes, wire length); the
rest of the pipeline never knows which source it is fed by.
"""

from analyzer.sources.base import Frame, LinkType, Tick
from analyzer.sources.files import CAPTURE_SUFFIXES, CaptureReader, expand_paths
from analyzer.sources.pcapng import SecretsSink

__all__ = [
    "CAPTURE_SUFFIXES", "CaptureReader", "Frame", "LinkType", "SecretsSink", "Tick",
    "expand_paths",
]
