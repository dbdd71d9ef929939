"""QUIC packet protection against the published vectors: RFC 9001 Appendix A (v1),
RFC 9369 Appendix A (v2) and draft-ietf-quic-tls-29 Appendix A, all for the client's
first DCID 8394c8f03e515708. Each packet is the RFC's hex; what it must decrypt to is the
RFC's plaintext, so a wrong salt, label, mask, nonce or packet-number decoding fails here.
"""

from __future__ import annotations

import pytest

from analyzer.quic import QuicConnectionParser, Retry
from analyzer.quic.crypto import (
    PacketKeys,
    decode_packet_number,
    initial_keys,
    initial_secrets,
    packet_keys,
    retry_tag_valid,
)
from analyzer.quic.packet import LongPacket, RetryPacket, split_datagram
from analyzer.quic.versions import VERSION_1, VERSION_2, VERSIONS
from analyzer.tls.events import HandshakeMsg
from analyzer.tls.messages import ClientHello, ServerHello

DCID = bytes.fromhex("8394c8f03e515708")
V1, V2, D29 = VERSIONS[VERSION_1], VERSIONS[VERSION_2], VERSIONS[0xFF00001D]

# RFC 9001 A.2: the client's Initial, 1200 bytes: header c0 00000001 08 8394c8f03e515708
# 00 (no SCID) 00 (no token) 449e (Length 1182) then the protected packet number
# (unprotected: 4 bytes, value 2) and the protected payload.
V1_CLIENT_INITIAL = bytes.fromhex(
    "c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11"
    "d242b123dc9bd8bab936b47d92ec356c0bab7df5976d27cd449f63300099f399"
    "1c260ec4c60d17b31f8429157bb35a1282a643a8d2262cad67500cadb8e7378c"
    "8eb7539ec4d4905fed1bee1fc8aafba17c750e2c7ace01e6005f80fcb7df6212"
    "30c83711b39343fa028cea7f7fb5ff89eac2308249a02252155e2347b63d58c5"
    "457afd84d05dfffdb20392844ae812154682e9cf012f9021a6f0be17ddd0c208"
    "4dce25ff9b06cde535d0f920a2db1bf362c23e596d11a4f5a6cf3948838a3aec"
    "4e15daf8500a6ef69ec4e3feb6b1d98e610ac8b7ec3faf6ad760b7bad1db4ba3"
    "485e8a94dc250ae3fdb41ed15fb6a8e5eba0fc3dd60bc8e30c5c4287e53805db"
    "059ae0648db2f64264ed5e39be2e20d82df566da8dd5998ccabdae053060ae6c"
    "7b4378e846d29f37ed7b4ea9ec5d82e7961b7f25a9323851f681d582363aa5f8"
    "9937f5a67258bf63ad6f1a0b1d96dbd4faddfcefc5266ba6611722395c906556"
    "be52afe3f565636ad1b17d508b73d8743eeb524be22b3dcbc2c7468d54119c74"
    "68449a13d8e3b95811a198f3491de3e7fe942b330407abf82a4ed7c1b311663a"
    "c69890f4157015853d91e923037c227a33cdd5ec281ca3f79c44546b9d90ca00"
    "f064c99e3dd97911d39fe9c5d0b23a229a234cb36186c4819e8b9c5927726632"
    "291d6a418211cc2962e20fe47feb3edf330f2c603a9d48c0fcb5699dbfe58964"
    "25c5bac4aee82e57a85aaf4e2513e4f05796b07ba2ee47d80506f8d2c25e50fd"
    "14de71e6c418559302f939b0e1abd576f279c4b2e0feb85c1f28ff18f58891ff"
    "ef132eef2fa09346aee33c28eb130ff28f5b766953334113211996d20011a198"
    "e3fc433f9f2541010ae17c1bf202580f6047472fb36857fe843b19f5984009dd"
    "c324044e847a4f4a0ab34f719595de37252d6235365e9b84392b061085349d73"
    "203a4a13e96f5432ec0fd4a1ee65accdd5e3904df54c1da510b0ff20dcc0c77f"
    "cb2c0e0eb605cb0504db87632cf3d8b4dae6e705769d1de354270123cb11450e"
    "fc60ac47683d7b8d0f811365565fd98c4c8eb936bcab8d069fc33bd801b03ade"
    "a2e1fbc5aa463d08ca19896d2bf59a071b851e6c239052172f296bfb5e724047"
    "90a2181014f3b94a4e97d117b438130368cc39dbb2d198065ae3986547926cd2"
    "162f40a29f0c3c8745c0f50fba3852e566d44575c29d39a03f0cda721984b6f4"
    "40591f355e12d439ff150aab7613499dbd49adabc8676eef023b15b65bfc5ca0"
    "6948109f23f350db82123535eb8a7433bdabcb909271a6ecbcb58b936a88cd4e"
    "8f2e6ff5800175f113253d8fa9ca8885c2f552e657dc603f252e1a8e308f76f0"
    "be79e2fb8f5d5fbbe2e30ecadd220723c8c0aea8078cdfcb3868263ff8f09400"
    "54da48781893a7e49ad5aff4af300cd804a6b6279ab3ff3afb64491c85194aab"
    "760d58a606654f9f4400e8b38591356fbf6425aca26dc85244259ff2b19c41b9"
    "f96f3ca9ec1dde434da7d2d392b905ddf3d1f9af93d1af5950bd493f5aa731b4"
    "056df31bd267b6b90a079831aaf579be0a39013137aac6d404f518cfd4684064"
    "7e78bfe706ca4cf5e9c5453e9f7cfd2b8b4c8d169a44e55c88d4a9a7f9474241"
    "e221af44860018ab0856972e194cd934"
)

# RFC 9001 A.2: the unprotected payload starts with this CRYPTO frame (06, offset 00,
# length 40f1 = 241, a ClientHello for example.com with ALPN "alpn"), then PADDING to 1162.
V1_CLIENT_FRAMES = bytes.fromhex(
    "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868"
    "04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578"
    "616d706c652e636f6dff01000100000a00080006001d00170018001000070005"
    "04616c706e000500050100000000003300260024001d00209370b2c9caa47fba"
    "baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400"
    "0d0010000e0403050306030203080408050806002d00020101001c0002400100"
    "3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000"
    "75300901100f088394c8f03e51570806048000ffff"
)

# RFC 9001 A.3: the server's Initial: header cf 00000001 00 (no DCID) 08 f067a5502a4262b5
# (SCID) 00 (no token) 4075 (Length 117), 2-byte packet number 1, protected payload.
V1_SERVER_INITIAL = bytes.fromhex(
    "cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a"
    "5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3"
    "dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84"
    "022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc4"
    "2158407dd074ee"
)

# RFC 9001 A.3: its payload: ACK (02 00 00 00 00) then CRYPTO (06 00 405a) with the
# ServerHello (TLS_AES_128_GCM_SHA256, x25519 key share, supported_versions TLS 1.3).
V1_SERVER_FRAMES = bytes.fromhex(
    "02000000000600405a020000560303eefce7f7b37ba1d1632e96677825ddf739"
    "88cfc79825df566dc5430b9a045a1200130100002e00330024001d00209d3c94"
    "0d89690b84d08a60993c144eca684d1081287c834d5311bcf32bb9da1a002b00"
    "020304"
)

# RFC 9001 A.4: Retry answering A.2: ff 00000001 00 08 f067a5502a4262b5, token "token",
# then the 16-byte integrity tag.
V1_RETRY = bytes.fromhex(
    "ff000000010008f067a5502a4262b5746f6b656e04a265ba2eff4d829058fb3f0f2496ba"
)

# RFC 9001 A.5: a 1-RTT packet (short header 4c, empty DCID, 3-byte packet number
# 654360564) carrying one PING, protected with ChaCha20-Poly1305 from this secret.
CHACHA_SECRET = bytes.fromhex("9ac312a7f877468ebe69422748ad00a15443f18203a07d6060f688f30f21632b")
V1_CHACHA_SHORT = bytes.fromhex("4cfe4189655e5cd55c41f69080575d7999c25a5bfb")

# RFC 9369 Appendix A.2: the client Initial of RFC 9001 A.2 protected as QUIC v2.
V2_CLIENT_INITIAL = bytes.fromhex(
    "d76b3343cf088394c8f03e5157080000449ea0c95e82ffe67b6abcdb4298b485"
    "dd04de806071bf03dceebfa162e75d6c96058bdbfb127cdfcbf903388e99ad04"
    "9f9a3dd4425ae4d0992cfff18ecf0fdb5a842d09747052f17ac2053d21f57c5d"
    "250f2c4f0e0202b70785b7946e992e58a59ac52dea6774d4f03b55545243cf1a"
    "12834e3f249a78d395e0d18f4d766004f1a2674802a747eaa901c3f10cda5500"
    "cb9122faa9f1df66c392079a1b40f0de1c6054196a11cbea40afb6ef5253cd68"
    "18f6625efce3b6def6ba7e4b37a40f7732e093daa7d52190935b8da58976ff33"
    "12ae50b187c1433c0f028edcc4c2838b6a9bfc226ca4b4530e7a4ccee1bfa2a3"
    "d396ae5a3fb512384b2fdd851f784a65e03f2c4fbe11a53c7777c023462239dd"
    "6f7521a3f6c7d5dd3ec9b3f233773d4b46d23cc375eb198c63301c21801f6520"
    "bcfb7966fc49b393f0061d974a2706df8c4a9449f11d7f3d2dcbb90c6b877045"
    "636e7c0c0fe4eb0f697545460c806910d2c355f1d253bc9d2452aaa549e27a1f"
    "ac7cf4ed77f322e8fa894b6a83810a34b361901751a6f5eb65a0326e07de7c12"
    "16ccce2d0193f958bb3850a833f7ae432b65bc5a53975c155aa4bcb4f7b2c4e5"
    "4df16efaf6ddea94e2c50b4cd1dfe06017e0e9d02900cffe1935e0491d77ffb4"
    "fdf85290fdd893d577b1131a610ef6a5c32b2ee0293617a37cbb08b847741c3b"
    "8017c25ca9052ca1079d8b78aebd47876d330a30f6a8c6d61dd1ab5589329de7"
    "14d19d61370f8149748c72f132f0fc99f34d766c6938597040d8f9e2bb522ff9"
    "9c63a344d6a2ae8aa8e51b7b90a4a806105fcbca31506c446151adfeceb51b91"
    "abfe43960977c87471cf9ad4074d30e10d6a7f03c63bd5d4317f68ff325ba3bd"
    "80bf4dc8b52a0ba031758022eb025cdd770b44d6d6cf0670f4e990b22347a7db"
    "848265e3e5eb72dfe8299ad7481a408322cac55786e52f633b2fb6b614eaed18"
    "d703dd84045a274ae8bfa73379661388d6991fe39b0d93debb41700b41f90a15"
    "c4d526250235ddcd6776fc77bc97e7a417ebcb31600d01e57f32162a8560cacc"
    "7e27a096d37a1a86952ec71bd89a3e9a30a2a26162984d7740f81193e8238e61"
    "f6b5b984d4d3dfa033c1bb7e4f0037febf406d91c0dccf32acf423cfa1e70710"
    "10d3f270121b493ce85054ef58bada42310138fe081adb04e2bd901f2f13458b"
    "3d6758158197107c14ebb193230cd1157380aa79cae1374a7c1e5bbcb80ee23e"
    "06ebfde206bfb0fcbc0edc4ebec309661bdd908d532eb0c6adc38b7ca7331dce"
    "8dfce39ab71e7c32d318d136b6100671a1ae6a6600e3899f31f0eed19e3417d1"
    "34b90c9058f8632c798d4490da4987307cba922d61c39805d072b589bd52fdf1"
    "e86215c2d54e6670e07383a27bbffb5addf47d66aa85a0c6f9f32e59d85a44dd"
    "5d3b22dc2be80919b490437ae4f36a0ae55edf1d0b5cb4e9a3ecabee93dfc6e3"
    "8d209d0fa6536d27a5d6fbb17641cde27525d61093f1b28072d111b2b4ae5f89"
    "d5974ee12e5cf7d5da4d6a31123041f33e61407e76cffcdcfd7e19ba58cf4b53"
    "6f4c4938ae79324dc402894b44faf8afbab35282ab659d13c93f70412e85cb19"
    "9a37ddec600545473cfb5a05e08d0b209973b2172b4d21fb69745a262ccde96b"
    "a18b2faa745b6fe189cf772a9f84cbfc"
)

# RFC 9369 Appendix A.3: the server Initial of RFC 9001 A.3 as QUIC v2 (first byte d1:
# long header, type 0b01 = Initial in v2, 2-byte packet number 1).
V2_SERVER_INITIAL = bytes.fromhex(
    "dc6b3343cf0008f067a5502a4262b5004075d92faaf16f05d8a4398c47089698"
    "baeea26b91eb761d9b89237bbf87263017915358230035f7fd3945d88965cf17"
    "f9af6e16886c61bfc703106fbaf3cb4cfa52382dd16a393e42757507698075b2"
    "c984c707f0a0812d8cd5a6881eaf21ceda98f4bd23f6fe1a3e2c43edd9ce7ca8"
    "4bed8521e2e140"
)

# RFC 9369 Appendix A.4: Retry (type 0b00 in v2) with token "token" for the same DCID.
V2_RETRY = bytes.fromhex(
    "cf6b3343cf0008f067a5502a4262b5746f6b656ec8646ce8bfe33952d955543665dcc7b6"
)

# RFC 9369 Appendix A.5: RFC 9001 A.5's PING packet with "quicv2" labels.
V2_CHACHA_SHORT = bytes.fromhex("5558b1c60ae7b6b932bc27d786f4bc2bb20f2162ba")

# draft-ietf-quic-tls-29 Appendix A.2: a client Initial (version ff00001d, DCID
# 8394c8f03e515708, packet number 2) whose ClientHello names "server".
D29_CLIENT_INITIAL = bytes.fromhex(
    "c5ff00001d088394c8f03e5157080000449e4a95245bfb66bc5f93032b7ddd89"
    "fe0ff15d9c4f7050fccdb71c1cd80512d4431643a53aafa1b0b518b44968b18b"
    "8d3e7a4d04c30b3ed9410325b2abb2dafb1c12f8b70479eb8df98abcaf95dd8f"
    "3d1c78660fbc719f88b23c8aef6771f3d50e10fdfb4c9d92386d44481b6c52d5"
    "9e5538d3d3942de9f13a7f8b702dc31724180da9df22714d01003fc5e3d165c9"
    "50e630b8540fbd81c9df0ee63f94997026c4f2e1887a2def79050ac2d86ba318"
    "e0b3adc4c5aa18bcf63c7cf8e85f569249813a2236a7e72269447cd1c755e451"
    "f5e77470eb3de64c8849d292820698029cfa18e5d66176fe6e5ba4ed18026f90"
    "900a5b4980e2f58e39151d5cd685b10929636d4f02e7fad2a5a458249f5c0298"
    "a6d53acbe41a7fc83fa7cc01973f7a74d1237a51974e097636b6203997f921d0"
    "7bc1940a6f2d0de9f5a11432946159ed6cc21df65c4ddd1115f86427259a196c"
    "7148b25b6478b0dc7766e1c4d1b1f5159f90eabc61636226244642ee148b464c"
    "9e619ee50a5e3ddc836227cad938987c4ea3c1fa7c75bbf88d89e9ada642b2b8"
    "8fe8107b7ea375b1b64889a4e9e5c38a1c896ce275a5658d250e2d76e1ed3a34"
    "ce7e3a3f383d0c996d0bed106c2899ca6fc263ef0455e74bb6ac1640ea7bfedc"
    "59f03fee0e1725ea150ff4d69a7660c5542119c71de270ae7c3ecfd1af2c4ce5"
    "51986949cc34a66b3e216bfe18b347e6c05fd050f85912db303a8f054ec23e38"
    "f44d1c725ab641ae929fecc8e3cefa5619df4231f5b4c009fa0c0bbc60bc75f7"
    "6d06ef154fc8577077d9d6a1d2bd9bf081dc783ece60111bea7da9e5a9748069"
    "d078b2bef48de04cabe3755b197d52b32046949ecaa310274b4aac0d008b1948"
    "c1082cdfe2083e386d4fd84c0ed0666d3ee26c4515c4fee73433ac703b690a9f"
    "7bf278a77486ace44c489a0c7ac8dfe4d1a58fb3a730b993ff0f0d61b4d89557"
    "831eb4c752ffd39c10f6b9f46d8db278da624fd800e4af85548a294c1518893a"
    "8778c4f6d6d73c93df200960104e062b388ea97dcf4016bced7f62b4f062cb6c"
    "04c20693d9a0e3b74ba8fe74cc01237884f40d765ae56a51688d985cf0ceaef4"
    "3045ed8c3f0c33bced08537f6882613acd3b08d665fce9dd8aa73171e2d3771a"
    "61dba2790e491d413d93d987e2745af29418e428be34941485c93447520ffe23"
    "1da2304d6a0fd5d07d0837220236966159bef3cf904d722324dd852513df39ae"
    "030d8173908da6364786d3c1bfcb19ea77a63b25f1e7fc661def480c5d00d444"
    "56269ebd84efd8e3a8b2c257eec76060682848cbf5194bc99e49ee75e4d0d254"
    "bad4bfd74970c30e44b65511d4ad0e6ec7398e08e01307eeeea14e46ccd87cf3"
    "6b285221254d8fc6a6765c524ded0085dca5bd688ddf722e2c0faf9d0fb2ce7a"
    "0c3f2cee19ca0ffba461ca8dc5d2c8178b0762cf67135558494d2a96f1a139f0"
    "edb42d2af89a9c9122b07acbc29e5e722df8615c343702491098478a389c9872"
    "a10b0c9875125e257c7bfdf27eef4060bd3d00f4c14fd3e3496c38d3c5d1a566"
    "8c39350effbc2d16ca17be4ce29f02ed969504dda2a8c6b9ff919e693ee79e09"
    "089316e7d1d89ec099db3b2b268725d888536a4b8bf9aee8fb43e82a4d919d48"
    "43b1ca70a2d8d3f725ead1391377dcc0"
)

# draft-ietf-quic-tls-29 Appendix A.3: the server's Initial (2-byte packet number 1). Its
# plaintext kept the frame codes of older drafts (ACK 0x0d, CRYPTO 0x18), so only its
# protection is checked, not its frames.
D29_SERVER_INITIAL = bytes.fromhex(
    "caff00001d0008f067a5502a4262b5004074aaf2f007823a5d3a1207c86ee491"
    "32824f0465243d082d868b107a38092bc80528664cbf9456ebf27673fb5fa506"
    "1ab573c9f001b81da028a00d52ab00b15bebaa70640e106cf2acd043e9c6b441"
    "1c0a79637134d8993701fe779e58c2fe753d14b0564021565ea92e57bc6faf56"
    "dfc7a40870e6"
)

# draft-ietf-quic-tls-29 Appendix A.4: Retry with token "token".
D29_RETRY = bytes.fromhex(
    "ffff00001d0008f067a5502a4262b5746f6b656ed16926d81f6f9ca2953a8aa4575e1e49"
)


def _long(data: bytes) -> LongPacket:
    split = split_datagram(data, 0)
    assert split.anomaly is None and len(split.packets) == 1
    packet = split.packets[0][1]
    assert isinstance(packet, LongPacket)
    return packet


def _open(keys: PacketKeys, data: bytes, largest: int = -1) -> tuple[int, bytes, bytes]:
    packet = _long(data)
    opened = keys.unprotect(packet.data, packet.pn_offset, largest)
    assert opened is not None
    return opened.packet_number, opened.header, opened.payload


def test_v2_initial_secrets_rfc9369_a1() -> None:
    client, server = initial_secrets(V2, DCID)
    assert client.hex() == "14ec9d6eb9fd7af83bf5a668bc17a7e283766aade7ecd0891f70f9ff7f4bf47b"
    assert server.hex() == "0263db1782731bf4588e7e4d93b7463907cb8cd8200b5da55a8bd488eafc37c1"


def test_v1_header_protection_masks_rfc9001_a2_a3() -> None:
    client, server = initial_keys(V1, DCID)
    assert client.mask(bytes.fromhex("d1b1c98dd7689fb8ec11d242b123dc9b")).hex() == "437b9aec36"
    assert server.mask(bytes.fromhex("2cd0991cd25b0aac406a5816b6394100")).hex() == "2ec0d8356a"


def test_v1_client_initial_rfc9001_a2() -> None:
    client, _ = initial_keys(V1, DCID)
    number, header, payload = _open(client, V1_CLIENT_INITIAL)
    assert number == 2
    assert header.hex() == "c300000001088394c8f03e5157080000449e00000002"
    assert payload == V1_CLIENT_FRAMES + bytes(1162 - len(V1_CLIENT_FRAMES))


def test_v1_server_initial_rfc9001_a3() -> None:
    _, server = initial_keys(V1, DCID)
    number, header, payload = _open(server, V1_SERVER_INITIAL)
    assert (number, header.hex()) == (1, "c1000000010008f067a5502a4262b50040750001")
    assert payload == V1_SERVER_FRAMES


def test_v1_retry_rfc9001_a4() -> None:
    packet = split_datagram(V1_RETRY, 0).packets[0][1]
    assert isinstance(packet, RetryPacket)
    assert (packet.scid.hex(), packet.token) == ("f067a5502a4262b5", b"token")
    assert retry_tag_valid(V1, DCID, V1_RETRY) is True
    assert retry_tag_valid(V1, bytes(8), V1_RETRY) is False
    assert retry_tag_valid(V2, DCID, V1_RETRY) is False


def test_chacha20_short_header_rfc9001_a5() -> None:
    keys = packet_keys(0x1303, CHACHA_SECRET)
    assert keys.mask(bytes.fromhex("5e5cd55c41f69080575d7999c25a5bfb")).hex() == "aefefe7d03"
    opened = keys.unprotect(V1_CHACHA_SHORT, 1, 654360563)
    assert opened is not None
    assert (opened.packet_number, opened.header.hex(), opened.payload) == (
        654360564, "4200bff4", b"\x01")


def test_v2_initials_rfc9369_a2_a3() -> None:
    client, server = initial_keys(V2, DCID)
    number, header, payload = _open(client, V2_CLIENT_INITIAL)
    assert (number, header.hex()) == (2, "d36b3343cf088394c8f03e5157080000449e00000002")
    assert payload == V1_CLIENT_FRAMES + bytes(1162 - len(V1_CLIENT_FRAMES))
    number, header, payload = _open(server, V2_SERVER_INITIAL)
    assert (number, header.hex()) == (1, "d16b3343cf0008f067a5502a4262b50040750001")
    assert payload == V1_SERVER_FRAMES


def test_v2_retry_and_chacha_rfc9369_a4_a5() -> None:
    assert retry_tag_valid(V2, DCID, V2_RETRY) is True
    assert retry_tag_valid(V1, DCID, V2_RETRY) is False
    keys = packet_keys(0x1303, CHACHA_SECRET, V2.label_prefix)
    opened = keys.unprotect(V2_CHACHA_SHORT, 1, 654360563)
    assert opened is not None
    assert (opened.packet_number, opened.header.hex(), opened.payload) == (
        654360564, "4200bff4", b"\x01")


def test_draft29_vectors() -> None:
    client, server = initial_keys(D29, DCID)
    number, header, payload = _open(client, D29_CLIENT_INITIAL)
    assert (number, header.hex()) == (2, "c3ff00001d088394c8f03e5157080000449e00000002")
    assert payload[:4].hex() == "060040c4"  # CRYPTO, offset 0, 196 bytes
    number, header, payload = _open(server, D29_SERVER_INITIAL)
    assert (number, header.hex()) == (1, "c1ff00001d0008f067a5502a4262b50040740001")
    assert payload[:8].hex() == "0d0000000018410a"
    assert retry_tag_valid(D29, DCID, D29_RETRY) is True


def test_packet_number_decoding_rfc9000_a3() -> None:
    # RFC 9000 A.3: largest 0xa82f30ea, 16-bit truncated 0x9b32 -> 0xa82f9b32.
    assert decode_packet_number(0xA82F30EA, 0x9B32, 16) == 0xA82F9B32
    assert decode_packet_number(-1, 0, 8) == 0
    assert decode_packet_number(0xFF, 0x01, 8) == 0x101  # wraps forward
    assert decode_packet_number(0x100, 0xFF, 8) == 0xFF  # a late packet


@pytest.mark.parametrize(
    ("client_packet", "server_packet", "name"),
    [(V1_CLIENT_INITIAL, V1_SERVER_INITIAL, "v1"), (V2_CLIENT_INITIAL, V2_SERVER_INITIAL, "v2")],
)
def test_parser_on_the_rfc_exchange(client_packet: bytes, server_packet: bytes, name: str) -> None:
    parser = QuicConnectionParser()
    events = parser.datagram(True, client_packet, 1.0) + parser.datagram(False, server_packet, 1.1)
    hellos = [e.parsed for e in events if isinstance(e, HandshakeMsg)]
    assert len(hellos) == 2
    ch, sh = hellos
    assert isinstance(ch, ClientHello) and isinstance(sh, ServerHello)
    assert (ch.sni, ch.alpn, sh.cipher_suite, sh.version) == ("example.com", (b"alpn",), 0x1301,
                                                               0x0304)
    facts = parser.facts()
    assert (facts.version_name, facts.client_initial_dcid, facts.server_scid) == (
        name, DCID, bytes.fromhex("f067a5502a4262b5"))
    assert facts.history == "ISis"
    assert (facts.client.initial, facts.server.initial, facts.client.undecryptable) == (1, 1, 0)


@pytest.mark.parametrize(("client_packet", "retry"), [(V1_CLIENT_INITIAL, V1_RETRY),
                                                      (V2_CLIENT_INITIAL, V2_RETRY)])
def test_parser_on_the_rfc_retry(client_packet: bytes, retry: bytes) -> None:
    parser = QuicConnectionParser()
    parser.datagram(True, client_packet, 1.0)
    events = parser.datagram(False, retry, 1.1)
    retries = [e for e in events if isinstance(e, Retry)]
    assert retries == [Retry(scid=bytes.fromhex("f067a5502a4262b5"), token_length=5,
                             tag_valid=True)]
    facts = parser.facts()
    assert facts.retry == retries[0]
    assert facts.history_rows == ("ISr",)


def test_draft29_client_hello_through_the_parser() -> None:
    parser = QuicConnectionParser()
    events = parser.datagram(True, D29_CLIENT_INITIAL, 1.0)
    hellos = [e.parsed for e in events if isinstance(e, HandshakeMsg)]
    assert len(hellos) == 1 and isinstance(hellos[0], ClientHello)
    assert hellos[0].sni == "server"
    assert parser.facts().version_name == "draft-29"
