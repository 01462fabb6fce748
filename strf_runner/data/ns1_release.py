"""The NS1 raw release (Harper et al. 2016, OSF ``ayw2p``): its files, their checksums, and fetching them.

The release is ``MetadataSHEnCneurons.mat`` + ``spikesandwav/`` (20 stimulus waveforms under
``SH.En.C/``, one spike file per neuron), and, from the DNet repository, the 5 ms cochleagram
``test_data_5ms.mat`` (``X_nfht``). Turning it into a dataset is ``ns1``'s job.

**Where the files are.** ``locate_raw(root, download)``: the raw folder is ``root`` when given
(``dataset.root``, may be read-only), else ``<data_root>/ns1_raw`` (``raw_dir``). With
``download=True`` the missing files are fetched (``download.fetch``: resumable, progress bar, temp
name then rename) and the archive is unzipped safely (``extract_spikes``: every member checked
against path traversal and links, extracted to a temp folder, then renamed into place; the zip is
deleted afterwards, its ``.sha256`` kept). ``test_data_5ms.mat`` is fetched too, best effort: when it
cannot be had, a warning says so (``ns1`` then recomputes the native view).

**Checksums.** The SHA-256 and size of the metadata file and of every file of the release that is
used (20 waveforms, 119 neuron files) are embedded below (``RELEASE_FILES``, parsed from a table
taken from the release's ``SHA256SUMS``). ``verify_raw`` checks them all (about 100 MB, a fraction
of a second). The zip and ``test_data_5ms.mat`` have no digest known in advance: their downloads are
trusted on first use (their digest is recorded in ``<file>.sha256`` and checked afterwards); the
files inside the zip are then checked against the embedded digests.

**The ``_1`` sibling rule.** The reference looks for a neuron's file under the name in the metadata,
then under the same name with ``_1`` before ``.mat``, and skips the neuron if both are missing
(``neuron_files`` gives the file, its sibling, or None). A ``_1`` file is not part of the checksummed
release, so with ``strict`` (NS1's ``verify=True``) a missing named file is an error mentioning the
sibling; ``verify_raw`` mentions it too. ``waveform_path`` names the WAV file of a stimulus.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import warnings
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

from strf_runner.data import download as _download
from strf_runner.data.paths import data_root
from strf_runner.data.schema import file_sha256
from strf_runner.errors import DatasetError

__all__ = [
    "CITATION",
    "META_FILE",
    "META_URL",
    "RELEASE_FILES",
    "SPIKES_DIR",
    "STIMULUS_FILES",
    "WAVEFORM_DIR",
    "X_NFHT_FILE",
    "X_NFHT_URL",
    "ZIP_FILE",
    "ZIP_URL",
    "extract_spikes",
    "locate_raw",
    "neuron_files",
    "raw_dir",
    "verify_raw",
    "waveform_path",
]

# ---------------------------------------------------------------------------------------------
# sources

META_FILE = "MetadataSHEnCneurons.mat"
SPIKES_DIR = "spikesandwav"
ZIP_FILE = "spikesandwav.zip"
X_NFHT_FILE = "test_data_5ms.mat"
RAW_DIRNAME = "ns1_raw"  # the raw folder under the cache root when dataset.root is not given
META_URL = "https://osf.io/download/gdwyd/"
ZIP_URL = "https://osf.io/download/5nxga/"
X_NFHT_URL = "https://raw.githubusercontent.com/monzilur/DNet/master/test_data_5ms.mat"
META_SHA256 = "857f7821dcd7f388cb94cb97b1086fcfc27a9196718e83d81feab60c79c7bb3c"
CITATION = "Harper et al. 2016, PLoS Comput Biol 12(6):e1005113"
# the stimulus waveforms: spikesandwav/SH.En.C/<STIMULUS_FILES[s]> for stimulus s = 0..19
WAVEFORM_DIR = "SH.En.C"
STIMULUS_FILES = tuple(f"source.1.sound.0.snr.0.token.0.fw.2.frozen.{i}" for i in range(1, 13)) + tuple(
    f"source.2.sound.0.snr.0.token.0.fw.1.frozen.{i}" for i in range(1, 9)
)

# ---------------------------------------------------------------------------------------------
# the release: size and SHA-256 of every file used, relative to spikesandwav/ (from SHA256SUMS).
# A line ending in "/" names the folder of the lines after it.

_RELEASE_TABLE = """
SH.En.C/
  976604 199ca75f5166af2981162a8670fa9bad7f3c5742aa7d7bd1922fe601cf4bdafb source.1.sound.0.snr.0.token.0.fw.2.frozen.1
  976604 a2c28eebf9755417f82f45d54826a1d595d9b40c3524f4be3075ee294780c60a source.1.sound.0.snr.0.token.0.fw.2.frozen.2
  976604 c710eb20200f8b6d75609d0770bd77d1639dc29a5ab15335d5dab806c2da4f50 source.1.sound.0.snr.0.token.0.fw.2.frozen.3
  976604 2a1b07c64c4c44f72a9dc8a1e64dcf4bab0b1f21a0d68dafbc53b99a19a03038 source.1.sound.0.snr.0.token.0.fw.2.frozen.4
  976604 1c1736ab9ed608a8f1ac3f1516f33733d0acb826903ce9bbabfb5601bdefef7f source.1.sound.0.snr.0.token.0.fw.2.frozen.5
  976604 ecb50b861f0d2051622318e645167b6de80d891800fb42e5c26d1b25bed3a5d5 source.1.sound.0.snr.0.token.0.fw.2.frozen.6
  976604 77103729a282f0a525f1e5f8befb5945a87496dc60ef729b4292fd8713fa5a16 source.1.sound.0.snr.0.token.0.fw.2.frozen.7
  976604 ef1c898b3aa2d2d9679fbc9deea3f63d4e14d1ababe28d27cbf062826c3c9a70 source.1.sound.0.snr.0.token.0.fw.2.frozen.8
  976604 d49f995728e2982ee487ea4b4c7b3534d63ad0e00e167a7f112e2afafc07a70f source.1.sound.0.snr.0.token.0.fw.2.frozen.9
  976604 ed31694455360686511fe1a8232529bca7a116bc796aaa932b596b5651ba6288 source.1.sound.0.snr.0.token.0.fw.2.frozen.10
  976604 489bae9e52013c86e1fc54e37998eba99ec45a50433a2e35a4cc03172d2797a3 source.1.sound.0.snr.0.token.0.fw.2.frozen.11
  976604 7d1e1073cd2b0e7c9d3d2d26243495c305e9ccb40cecb1816bcb7fc7882ba722 source.1.sound.0.snr.0.token.0.fw.2.frozen.12
  976604 d8fc684b45db979e69dd1846f220b69441955e4c238ec5b8a0dbf7553c13df52 source.2.sound.0.snr.0.token.0.fw.1.frozen.1
  976604 44081b244859d425f1d631efe53cee3b55573cf0992a543750c865a093100b6a source.2.sound.0.snr.0.token.0.fw.1.frozen.2
  976604 e01ec763b5fc0a12388501c19f3d086d3554fa1571d5a98cfbf4106fd5cab8a3 source.2.sound.0.snr.0.token.0.fw.1.frozen.3
  976604 2fc8c31d1735021eef963ad5f0e08f904f253f503fa48c827475cb0ac316685a source.2.sound.0.snr.0.token.0.fw.1.frozen.4
  976608 80f4a9ca89e2ff52b4b735ea2f6525c4720552302daf6ab52c0c9d98dbc16e42 source.2.sound.0.snr.0.token.0.fw.1.frozen.5
  976608 81199efbb2f5364052642aa7d4919b48d417ebf0c83cd214cf9612a957132317 source.2.sound.0.snr.0.token.0.fw.1.frozen.6
  976608 35d9d77d3732285fcbad45216bda3c952a456b5fb6bd20d6a7920b05d08740d6 source.2.sound.0.snr.0.token.0.fw.1.frozen.7
  976608 27f9421282a800a68601d28f56f198cb5c21018063746631befffee167bb48a6 source.2.sound.0.snr.0.token.0.fw.1.frozen.8
dataAC/E1/
  700208 74c13fa476f5d51ab74c972b0bee719628501a72152fd6be327660ab0039919e cluster.02.data.mat
  432216 fea602cd51c40fb959eb19bada3cee867b8d80046c6fa68f236c5286fb6b9266 cluster.03.data.mat
  762032 c5aa76ccdf0c8ee2b3ef985a8bf66e7f01b5c2e7e215b9fc751efbdc9faa0086 cluster.04.data.mat
  719696 37010b596c62e818a112aef52a426a94c4f8989adb3c1158387d23947da84de5 cluster.05.data.mat
  481536 c90e76d0b89657ce80a0c06fb47839d532d2204f524c511860bf9ab377c82c16 cluster.06.data.mat
  539688 aae623f69deb06f99bf217acbb9ea2406828450dc8d11c3cbfb1bbb244774d39 cluster.07.data.mat
dataAC/E1P02.L.SH.En.C/
 2116472 86ffc3fd44892b00791921e48736c3c0719f926c2d83940f1d094267cd0d14e8 cluster.01.data.mat
 1432152 f99d3e69b357657886342573c1c5a4255a9e4cd9c3740433ab686ec721f398e4 cluster.02.data.mat
  841144 25829352d8edcceac1624ccff11f4d1073a4635aa3ea70e1d346430e60ddb1e0 cluster.03.data.mat
dataAC/E1P02.R.SH.En.C/
  771992 914c008fa1c28536388cccb915534579d5b8a3665866fd428111a59f03269b2d cluster.02.data.mat
 1346056 40103f839765b8554b61ca79e334db1377feb59bd7461aab66a19259eeef7959 cluster.04.data.mat
 1301824 ffea60113a51edc94f7c1528101297c74423dd4ae8eda86ff5a839959a549639 cluster.06.data.mat
  344240 831cbd09f89055e6c17b40c9b8709e2d28ce4a8c1e15e045560f4c1f5c7ca362 cluster.07.data.mat
  708128 996baa57ec66b5de526bcadb548a656a97c425137a3ae6f5d3e34675f63c0276 cluster.08.data.mat
 1180200 f9616735176479fecaaa59e6a3dbc53cf2983007a2cb584ca1264e125ab54e95 cluster.09.data.mat
 1171976 457331a211e57e1cbf14ff8a4b5a64f1484ced2cf391ed71bb4c267f3d0ed4c2 cluster.10.data.mat
dataAC/E1P04.L.SH.En.C/
 1137784 419eae776255c08c4e2b24acd1b268797f2b6c770ac8b42ca5cc4d6e1671d414 cluster.04.data.mat
  916688 1f47c303c3d3e937803f2ed9d0b2ea8b29e252fd239d45a7443a1ad6b033038c cluster.05.data.mat
  930656 3be792bc543bcf8b5458c2763e4bfa8c0c516ed76a9b191f22172c01b1bb6312 cluster.06.data.mat
dataAC/E1P04.R.SH.En.C/
  722640 1d416e0ed6e54bf026453e5cfa3d39f513b99b51767c77a5039499b8e5af975d cluster.02.data.mat
  960152 c8f675a88af19a471fa4d94294f9bba919c24e8c232265c3ed36652a1d02db7a cluster.03.data.mat
 1355928 131e1af4c9ba68da548dd206aa2465c93fcf0f480d168c038e44eb5657a0c779 cluster.04.data.mat
  394680 020cd0a4f0f24e76da606c58d742b069709e0665cd755459f1f005b9164ce893 cluster.05.data.mat
  308072 8f79f80ea79ec0f1c0bd79bf8772de74d9fdcebf75989a08d6ca0e5a8f5442db cluster.06.data.mat
exp42_split1x32/P10-SH.En.C.D/
  370880 d15fcc78ec5bdf7935c7ced52137f81329312cb0df5de72c2f328c5bc9944091 cluster.08.data.mat
exp42_split1x32/P11-SH.En.C.D/
  621208 f5c63a741eb5142c35895728ace321d3cf6a75352cd796317586d8b7a0aeea8f cluster.07.data.mat
  444896 928b828ac5c4dc08fdc7b8bf83ab59f4c92e6e5abf65f0fc810f3a9800c965a8 cluster.08.data.mat
  407320 7d2c5024e88ec4eb690dc02b57c996f0a708c14236e3949bf275fdd61f0ae026 cluster.09.data.mat
exp45_1x32/P03-SH.En.C.U/
  720320 7a853a99e0798c43ff290ea6ad8873a4b3f4745492afe3004a9445399fd6c71e cluster.01.data.mat
  631752 8387a6fd8cdf3ebc23138f37da0fdf0619f980f169a0792595499445361eb7f4 cluster.04.data.mat
  364896 71a9bde3d71af8c25b3efc212856cc4a9aeecefee7f5328868caab4f1172e9bf cluster.05.data.mat
exp45_1x32/P04-SH.En.C.D/
  512112 303fd63a01594be0f331e33c918d0595425c824a754dde989a9dde4619f53046 cluster.02.data.mat
 1072640 c52fe5feb8b40af41b84a22127a90aaba2e79875deda7d509691b0b68bcf37bc cluster.03.data.mat
 1195504 4f34f3ea5e4ad3be3aa6a0d4c2289f47227ea14536ba64fa642850aa7ab7c343 cluster.04.data.mat
exp45_1x32/P04-SH.En.C.U/
  550264 5ff0088abd51246d5d949cb087c34fed005126d8caecf58352a2739825c981c9 cluster.01.data.mat
  779584 fc3ea9f86c7e87a5524ace1d4c4cb17d68dd6daf2a1b1cdd638569a11093202d cluster.02.data.mat
 1132832 53d8fbed4ecf2bd468564ad8d4c795bd6b4bbd79b9e4d730fb0d17cdf5dd3fb9 cluster.03.data.mat
  732256 75fc39cb1f22829f947cf13478b5e8b55d429b97aae0789d664b32fe3c09a4a9 cluster.04.data.mat
  629184 1f81b52e55696818a59a2257309e10b72989c8a6cc4721d8fdf22ce2ec96bd9c cluster.06.data.mat
  800208 d14c75da7b15e1d27a57f09492d0f7e821431cc370b7292c52ffb86cfb3877e4 cluster.07.data.mat
  647776 1dbe0d12b458ff8a4dfea54ebb6e3a9a6c85f5ae7104280168fc19b590ce99c9 cluster.08.data.mat
exp45_1x32/P07-SH.En.C.2.D/
 1056248 6547ace4b248dfa292601c99eb05f3b9f28d6c4904367e6079c667bf71061043 cluster.01.data.mat
  309432 2dae9102634c86b4bd15e1ad73dadfb5a8af36d637d7f0bf0d73161b36850e32 cluster.02.data.mat
  764240 564b15b7050447aaaacee6c3aedcde1eb2e98bd0c6e92ae9ad2d0308f4452236 cluster.03.data.mat
  552048 c987b4c5e588f6d9fe0f8358375d1cca749c2b27d28ec8403a220bd2a5aa2ca6 cluster.04.data.mat
  475520 b4483cbdd7af60b8eab590d24e5ad01d4ea133af01bd94eabc8289eae4151d2e cluster.05.data.mat
  375544 d97c7f2205f93e1d45b7613b4eba5deee7a765e52a6422d23f51452d7b713141 cluster.06.data.mat
  470360 71356462e0192992489f4dc671dd8ff710bbe74ea85b74cd5d723dbd44979268 cluster.07.data.mat
  629944 50ac6232477b20741503e46d22507d6480f04ca03b6a900f77f370c62897d2a1 cluster.08.data.mat
  510856 9d65c63b03680cebb286f64a3daf62f11feb5ad5dd8087146f08d007117edae9 cluster.09.data.mat
  523024 3967a46b253bce9f9d0e6b22aa76b1ffe21939ca40026ca3f2778a7136d2f2a2 cluster.10.data.mat
  551088 d30db354e8707cbcb900f64a9e74efade7896fe2497e87cb13112d3ee32a534c cluster.11.data.mat
exp45_1x32/P07-SH.En.C.2.U/
  694376 dbc9a4c24b84cc23ad48fe8a08efb9018a33c49695a3b31d74e441591b3383d6 cluster.01.data.mat
  466048 6884df9cc6622481dc22cf809adda2ee9e94e35191d7b49419dc0ae27fef397d cluster.02.data.mat
  687680 e15d9399a3fb9f00c8ba5fe845a12f888b0daa9d987594a7c93a775fc3a90cc9 cluster.03.data.mat
  550632 174d4a17c65b7bed868f077f6202cd12966625d367cbd183bebafa824cb52753 cluster.04.data.mat
  502816 a8e03d8cd4c48352b4f778ff84b1bf1058d24b825ed1d2e087381d0b284700f0 cluster.05.data.mat
  316408 bdf521150995e054cf8726cec2c9c6fbd0aa1285aa96b6d3d2ed00cbe50fe087 cluster.06.data.mat
  606040 63ee84a79ebdb74c40618ee6139d6ea0d8979ce7d8c783e69a28887773274dd5 cluster.07.data.mat
  512592 063e7c86c638a83e4cf77561e100dea7ee40f7cc9c7a14c4d651034b4d7f42e4 cluster.08.data.mat
exp45_1x32/P07-SH.En.C.U/
  378856 0600e5425d28f6ccd1fcf5dc1256d5aab3388dbe976e9a0b000ff3ce6886c1ba cluster.05.data.mat
  381680 507d64faf8e10323c8890697b00cad269cb730837e1b070b9ebeef6279b5f545 cluster.06.data.mat
  300408 9d080eed6073ad5d492fa512109c5bd4a1a027a6a0e5b8b996302e01a0918209 cluster.07.data.mat
  284784 efc19742241aa868a8416f30e41d0af61ae69bb333fa9a43f3394c5ef2b5daac cluster.08.data.mat
  326824 fad7a5e777c6c1b061a8858b5384267ffde72cf82fdf6a07eaddf8adf3c3b82c cluster.09.data.mat
exp45_1x32/P10-SH.En.C.D/
  604320 43bbf30f7d14ccf9c7383b7ad1f2479dd1dc229052ef55561a8d8ce1196eb7da cluster.01.data.mat
  241256 2075dc8e7d4a23c95de69efe2ff1f2a25a164f367e53bc4069b7a9fbd04953be cluster.02.data.mat
  541320 4eebae11aab136a5faa124f5709674cee212d15ca4764f43714422af866fa975 cluster.03.data.mat
  608512 d8b17541b085aa6d1ede8ce31d4c05bb3e6542676808aa02c5539e573c4b4916 cluster.07.data.mat
  560120 d1549f91a81db402458c3c449c1d57172daa31b90d6f3c2ff885a8f354edb6bc cluster.09.data.mat
  226080 dd23a1a6892885d945674f07dc3feb25291ef338353e59eab34d6f3bdc88a77b cluster.14.data.mat
  395360 16aafbbf6ad32928a8b3cbd5675997b6d21f0ff5cea909d37ebbbc49f37dfd11 cluster.15.data.mat
exp45_1x32/P10-SH.En.C.U/
  720120 44e7280f9e4ad124713394bf61975fe88d4faf185b01f5043c6b94f48c678a73 cluster.03.data.mat
exp53_1x32/P02-SH.En.C.2.D/
 1869632 5453850f55aa670a10382f8ee6855e81ebe1101beda675e310fea92a0b39a208 cluster.09.data.mat
exp53_1x32/P02-SH.En.C.2.U/
 1017856 9c3b6589558a65ed82277d5dcda56912c4e3f26a9867b642dc90296a22d1abf1 cluster.01.data.mat
 2375464 118e9c82d073629d5e350f0e07e7c4b46c0c223ddf296b9cd7439473e9ac2f28 cluster.02.data.mat
 2087336 5b0df7d7bac02abb065e683bdf1db365466919b2efc469a5413a54fe5e1b1c19 cluster.03.data.mat
 1548200 26e413e9e52e4d939a21a33bdd2d190a291a1cf90ebbc492d3e2b274d2899552 cluster.04.data.mat
 2394368 b32cc161e8bbc2d887692ab17e803c64ed6f2cdf9d39b239a2e28fd946508633 cluster.05.data.mat
exp57_B4x8/P03-SH_En_C.Lsh1/
 1164928 2908d671e59da087f9afe9b56c21e9a229f835ef4df27dd934a544caf6a0470f cluster.06.data.mat
  448072 a944ca8e048c80674c0278a81ba719f5fd6504254577071e54c0a631a234785c cluster.09.data.mat
exp57_B4x8/P03-SH_En_C.Lsh2/
  391704 033389af0ca76c278f36c8d58c1755dcddc48d55af84787b6e8bc7f84c427451 cluster.07.data.mat
  909768 f8e129c16477599c583a8b70d06a786d818f1f59828b47089e2229ab724340d9 cluster.09.data.mat
  409656 47d73432f58f304cb22599c8af9aa3b76e411f6a8c2d62c38d64aa0502260857 cluster.12.data.mat
  948440 5d15ac065db676e4279047c1ccdfc836cd4d88b47dfadfe11bf672707a481a5f cluster.13.data.mat
exp57_B4x8/P03-SH_En_C.Lsh3/
  712064 5bee07e7c6435f9195a1062e103c20e3a2e782800d19aeb70504fe4d1120cee0 cluster.08.data.mat
exp57_B4x8/P03-SH_En_C.Lsh4/
  913096 f4f60158118531c6e0c6ecf10b0a2efc2be958f4b205a2ba85d9df2f9421a009 cluster.02.data.mat
 1652736 4d83948e92335ec9c7265ed35b7102099cf099eebf2bdf5d183963752585db2e cluster.04.data.mat
  464184 3db193f8c326418c28dd5e75d3c591c7cd795dd7b04629078315d2c98fcad96d cluster.05.data.mat
  395728 64958252f2d182e3376cc27845c63919d31850698b4dcd7bf91747224edeffc2 cluster.07.data.mat
  481608 68919852d1e9d21fcdb06e38c00d318df9fc06b3bbdf73c931d7bd884114c408 cluster.10.data.mat
exp57_B4x8/P03-SH_En_C.Rsh3/
  276024 0beaf467802bdb3056b3d220cae0f7e1b4d2b7007f284fc45cf73e87adbaa2fd cluster.07.data.mat
  465768 68ec1515551cdbdca094535bfa697083d28de8824e07e25dec9350fd86bf33ab cluster.11.data.mat
  824360 08c7115bb2a73eca323b60a114236793dfa111d46951cdb28226e507bf07d4de cluster.13.data.mat
  403792 a78b46eb9ea08b6d5594fed4e456e7b6651419f43c49203446d97534c921ea50 cluster.14.data.mat
exp57_B4x8/P03-SH_En_C.Rsh4/
  289296 2c436c7881d9854e485ef305492349f62ed4fef201f98acab56c0753cfed24af cluster.09.data.mat
exp57_B4x8/P04-SH_En_C.Lsh4/
  219672 8f5f0edd7729393f5545a968dd63a07ace61aebe1c8aca116ab816544f51f989 cluster.13.data.mat
exp57_L4x8/P05-SH_En_C.3.Lsh2/
  636176 9c15d79e7a085a2189612e2124d26dde9f6ca2623e5cb90e106c7302fa46be20 cluster.15.data.mat
exp57_L4x8/P05-SH_En_C.3.Lsh3/
  454440 c0d6718fc6141d5180c90067d27b270a2e405c978297cbd0e051a0051e1aa50f cluster.07.data.mat
  991488 841221dd292781d5bb8f07494e81a3b6c86aa463cf32cb40f82a51fd2dc5d48a cluster.10.data.mat
  497464 b1f96a2e9c6d1c4446d7815c6a915610bab28db277a0dd5642fd0cdf0ba391b8 cluster.12.data.mat
  748616 f56138b6fd11401789b5be03cd12c73f5eca613b9295535a90690cfef4f068e6 cluster.13.data.mat
  753360 4153b32afd1c427e7f6c6a9c86f202dd8176719ea741bb7e127ff9d17b374696 cluster.14.data.mat
  853320 bae038b0447eaacfbb890a479660e82475fd1a72c0c4af2ae369bbbdc0a882ed cluster.16.data.mat
exp57_L4x8/P05-SH_En_C.3.Lsh4/
  610552 28dfe825ed9480a08c134370835c996ed30646f7c61be924c37947e32158b93c cluster.04.data.mat
  527376 fe86667a8d88fd230f1eb01c1848fea60aa368ae60b3befc9c96c2239e2c2706 cluster.06.data.mat
  596656 d90edcb32d9a0c68ad2d8c303665e5b602a2fa75f40c91932efd68259fae850f cluster.07.data.mat
  781304 796426ad741461fb75893bbfc431c7bf89be2eb47dcad32f142acdafdc9e4d1a cluster.09.data.mat
  437312 742e5d36b95d90dbab24422b1a9625da3424d3836f9f6c5de3a243b8c8f23955 cluster.12.data.mat
  642312 a36c9927149e1f34e476cb669bcd31336e5a986209275116fda32e397ac574c6 cluster.13.data.mat
  554048 b7b2900d0718c3d10ebf7d37b076942cb3a3474a9189150982735be77c392728 cluster.15.data.mat
  464512 0509582837c212bffa35982b6fc0b833e9cf5640fd155e441d00682e950324d7 cluster.16.data.mat
exp57_L4x8/P06-SH_En_C.Lsh1/
  310808 fa19f869c6cd21b8127c0ec0b2f249885eabf610eb2706904cfb010a3bbbf194 cluster.06.data.mat
  306704 2cef1be96980ce20b413d7575508fc34efe68d7ab7524f2d07fe69307f4e92c5 cluster.07.data.mat
exp57_L4x8/P06-SH_En_C.Lsh2/
  286240 d74d97979e70b6883bc4246b59eb8b211df7b3d4c85ae7eef548b3d4b52548e8 cluster.04.data.mat
  271480 10e3f65f70c65d944e9a9eeca7634f3ac6ff5252c0e75c01d12f39a095027597 cluster.05.data.mat
exp57_L4x8/P06-SH_En_C.Lsh3/
  345824 32bf073cc80f18bfc027ff7f566ef4b7db5c5dada18c07aaa1b5f29c8dac053c cluster.03.data.mat
  568424 3d8c6ca7cbe2bd576294a70f22a3c51def54479bc4edb5cc0c42ba9a29e76d79 cluster.05.data.mat
  302080 b9baa9fb68e102a9de1a1568e45853486b7027a2c95fca58486b8408cb93d3bb cluster.07.data.mat
"""


def _parse_release(table: str) -> dict[str, tuple[int, str]]:
    files = {META_FILE: (5217, META_SHA256)}
    folder = ""
    for line in table.split("\n"):
        line = line.strip()
        if line.endswith("/"):
            folder = line
        elif line:
            size, digest, name = line.split()
            files[f"{SPIKES_DIR}/{folder}{name}"] = (int(size), digest)
    return files


RELEASE_FILES: dict[str, tuple[int, str]] = _parse_release(_RELEASE_TABLE)
"""Relative path in the raw folder -> (size in bytes, SHA-256) for all 140 files that are used."""


# ---------------------------------------------------------------------------------------------
# acquiring the raw files


def raw_dir(root: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None) -> Path:
    """The raw folder: ``root`` if given, else ``data_root(cache_dir) / "ns1_raw"``."""
    return Path(root).expanduser() if root is not None else data_root(cache_dir) / RAW_DIRNAME


def locate_raw(
    root: str | os.PathLike | None = None,
    download: bool = False,
    *,
    cache_dir: str | os.PathLike | None = None,
    x_nfht: bool = True,
    progress: bool = True,
) -> Path:
    """The folder holding ``MetadataSHEnCneurons.mat`` and ``spikesandwav/``; fetch them if allowed.

    A ``spikesandwav.zip`` found in the folder is unzipped (no network needed). Otherwise, with
    ``download=False``, missing files are a one-line DatasetError naming both OSF URLs and the
    folder; with ``download=True`` they are fetched (metadata checked against its embedded SHA-256,
    the zip trusted on first use) and the zip is unzipped safely, then deleted. With ``download`` and
    ``x_nfht``, ``test_data_5ms.mat`` is fetched too when absent, best effort (a warning if not).
    """
    raw = raw_dir(root, cache_dir)
    meta, spikes, archive = raw / META_FILE, raw / SPIKES_DIR, raw / ZIP_FILE
    missing = [name for name, p in ((META_FILE, meta), (f"{SPIKES_DIR}/", spikes)) if not p.exists()]
    if missing and not download and not (missing == [f"{SPIKES_DIR}/"] and archive.is_file()):
        raise DatasetError(
            f"NS1 raw data not found: {raw} lacks {' and '.join(missing)}; download {META_URL} as {META_FILE} "
            f"and {ZIP_URL} as {ZIP_FILE} into {raw} (the zip is unpacked on first use), or set "
            "dataset.download=true, or set dataset.root to a folder holding them"
        )
    if not meta.exists():
        _download.fetch(META_URL, meta, META_SHA256, progress=progress)
    if not spikes.exists():
        if not archive.is_file() or download:
            _download.fetch(ZIP_URL, archive, None, progress=progress)
        extract_spikes(archive, raw)
        archive.unlink()
    if download and x_nfht and not (raw / X_NFHT_FILE).exists():
        try:
            _download.fetch(X_NFHT_URL, raw / X_NFHT_FILE, None, progress=progress)
        except DatasetError as err:
            warnings.warn(f"X_nfht not available, the native spectrogram will be recomputed: {err}", stacklevel=2)
    return raw


def extract_spikes(archive: str | os.PathLike, raw: str | os.PathLike) -> Path:
    """Unzip ``archive`` so that ``raw/spikesandwav/`` appears complete or not at all; return it.

    Members are written one by one into a temp folder inside ``raw`` after checks (no absolute
    path, no ``..``, no link, nothing that resolves outside the temp folder; ``__MACOSX/`` is
    skipped), then the archive's ``spikesandwav/`` folder (or its root, if it holds ``SH.En.C/``
    directly) is renamed into place. A bad archive is a DatasetError naming it.
    """
    archive, raw = Path(archive), Path(raw)
    target = raw / SPIKES_DIR
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{SPIKES_DIR}.", dir=raw))
    except OSError as err:
        raise DatasetError(f"cannot unzip {archive} into {raw} ({err.strerror or err})") from err
    try:
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                dest = _member_path(info, tmp, archive)
                if dest is None:
                    continue
                if info.is_dir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
        top = tmp / SPIKES_DIR if (tmp / SPIKES_DIR).is_dir() else tmp
        if not (top / WAVEFORM_DIR).is_dir():
            raise DatasetError(f"{archive} holds no {SPIKES_DIR}/{WAVEFORM_DIR}/ folder; not the NS1 spikesandwav.zip")
        os.replace(top, target)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as err:
        raise DatasetError(
            f"{archive} is not a valid zip archive ({err}); delete it and its .sha256 and download it again"
        ) from err
    except OSError as err:
        raise DatasetError(f"cannot unzip {archive} into {raw} ({err.strerror or err})") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _member_path(info: zipfile.ZipInfo, tmp: Path, archive: Path) -> Path | None:
    """Where a zip member may be written inside ``tmp``, None to skip it; DatasetError if unsafe."""
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if not parts or parts[0] == "__MACOSX":
        return None
    unsafe = name.startswith("/") or ".." in parts or ":" in parts[0]
    if stat.S_ISLNK(info.external_attr >> 16):
        unsafe = True
    dest = tmp.joinpath(*parts)
    if unsafe or not dest.resolve().is_relative_to(tmp.resolve()):
        raise DatasetError(
            f"{archive} has an unsafe member {info.filename!r} (absolute, '..' or a link); not extracted"
        )
    return dest


def verify_raw(raw_dir: str | os.PathLike, files: Mapping[str, tuple[int, str]] | None = None) -> None:
    """Check every release file in ``raw_dir`` against its embedded size and SHA-256.

    files: relative path -> (size, sha256); default ``RELEASE_FILES``. The first problem (missing,
    wrong size, wrong digest) is raised as a one-line DatasetError naming the file, with the count of
    further problems.
    """
    raw = Path(raw_dir)
    problems = []
    for rel, (size, digest) in (RELEASE_FILES if files is None else files).items():
        path = raw / rel
        if not path.is_file():
            hint = ""
            if path.suffix == ".mat" and _sibling(path).is_file():
                hint = f" (only {_sibling(path).name} is there, which is not part of the checked release)"
            problems.append(f"{path} is missing{hint}")
        elif path.stat().st_size != size:
            problems.append(f"{path} has {path.stat().st_size} bytes, expected {size} (truncated or corrupt)")
        elif (actual := file_sha256(path)) != digest:
            problems.append(f"{path} has sha256 {actual}, expected {digest} (corrupt)")
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise DatasetError(
            f"NS1 release check failed: {problems[0]}{more}; fetch the release again "
            "(dataset.download=true into an empty dataset.root), or set dataset.verify=false to use it unchecked"
        )


def _sibling(path: Path) -> Path:
    """The reference's fallback name: ``x.mat`` -> ``x_1.mat``."""
    return path.with_name(f"{path.stem}_1{path.suffix}")

# ---------------------------------------------------------------------------------------------
# the files of a raw folder


def waveform_path(raw: Path, s: int) -> Path:
    """The WAV file (no extension) of stimulus ``s`` (0..19) in the raw folder ``raw``."""
    return raw / SPIKES_DIR / WAVEFORM_DIR / STIMULUS_FILES[s]


def neuron_files(raw: Path, meta: list[dict[str, Any]], strict: bool) -> list[Path | None]:
    """The spike file of each neuron: the named one, else (not strict) its ``_1`` sibling, else None.

    meta: one dict per neuron with its ``path`` relative to ``spikesandwav/`` (as in the metadata).
    strict: a missing named file is a DatasetError (with verification on, the release must be whole).
    """
    files: list[Path | None] = []
    for m in meta:
        named = raw / SPIKES_DIR / m["path"]
        if named.is_file():
            files.append(named)
        elif strict:
            hint = f"; only {_sibling(named).name} exists" if _sibling(named).is_file() else ""
            raise DatasetError(
                f"NS1 neuron file {named} is missing{hint}; fetch the release again, or set dataset.verify=false "
                "to follow the reference (use the _1 file, else skip the neuron)"
            )
        else:
            files.append(_sibling(named) if _sibling(named).is_file() else None)
    return files
