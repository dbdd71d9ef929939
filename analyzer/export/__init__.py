"""Records and packets for the tools people already use: Wireshark (a display filter per
connection, the packets of chosen connections as pcapng), Zeek (``ssl.log``) and Elastic
or OpenSearch (ECS NDJSON). Each module is an edge: it reads finished records (and, for
Wireshark, the capture again) and writes a format; nothing here judges a connection.
"""
