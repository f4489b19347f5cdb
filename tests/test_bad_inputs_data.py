"""Hostile data folders (report hostile-input-2026-12-04, decoding and layout cases): each ends in the documented
decoded values or a DatasetError saying what is wrong and where. Fixtures are tiny files written in tmp_path."""
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from radlib.data import DatasetError, load
from radlib.data.folder import read_image, read_mask


def _save(path: Path, im: Image.Image) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


def _grey(value=100, size=(16, 16)) -> Image.Image:
    return Image.new("L", size, value)


def _folder(root: Path, *, test_good="good", defect="crack", train_good="good") -> Path:
    """A minimal MVTec-style folder: 2 train/good, 2 test/<test_good>, 2 test/<defect> 16x16 grey PNGs."""
    for sub in (f"train/{train_good}", f"test/{test_good}", f"test/{defect}"):
        for i in range(2):
            _save(root / sub / f"{i}.png", _grey(60 + 40 * i))
    return root


# [D13] float images ------------------------------------------------------------------------------------------
def test_float_tiff_in_unit_range_is_scaled_to_255_and_0_255_floats_are_grey_levels(tmp_path):
    unit = np.array([[0.0, 0.2, 0.5, 1.0]] * 4, np.float32)
    _save(tmp_path / "unit.tif", Image.fromarray(unit, "F"))
    got = read_image(tmp_path / "unit.tif", 4, 3)
    assert got.dtype == np.uint8 and got.shape == (3, 4, 4)
    assert got[0].tolist() == [[0, 51, 128, 255]] * 4 and (got == got[0]).all()  # round(255 v), grey x 3
    levels = np.array([[0.0, 2.0, 127.6, 255.0]] * 4, np.float32)
    _save(tmp_path / "levels.tif", Image.fromarray(levels, "F"))
    assert read_image(tmp_path / "levels.tif", 4, 1)[0].tolist() == [[0, 2, 128, 255]] * 4


@pytest.mark.parametrize("bad,needle", [(np.nan, "NaN"), (-0.5, r"\[-0.5, 1\]"), (300.0, r"\[0, 300\]"),
                                        (np.inf, r"\[0, inf\]")])
def test_float_image_with_nan_or_out_of_range_values_is_refused_naming_the_file(tmp_path, bad, needle):
    a = np.array([[0.0, 1.0], [0.5, bad]], np.float32)
    path = _save(tmp_path / "odd.tif", Image.fromarray(a, "F"))
    with pytest.raises(DatasetError, match=re.escape(str(path)) + ".*" + needle):
        read_image(path, 2, 3)


# [D15] 16-bit images -----------------------------------------------------------------------------------------
def test_16bit_png_is_read_as_fractions_of_65535_and_12bit_data_warns(tmp_path):
    full = np.array([[0, 257, 32768, 65535]] * 4, np.uint16)
    _save(tmp_path / "full.png", Image.fromarray(full))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # full-range data decodes without a warning
        assert read_image(tmp_path / "full.png", 4, 1)[0].tolist() == [[0, 1, 128, 255]] * 4
    twelve = np.array([[0, 1000, 2048, 4095]] * 4, np.uint16)  # 12-bit data left in the low bits
    path = _save(tmp_path / "twelve.png", Image.fromarray(twelve))
    with pytest.warns(RuntimeWarning, match=re.escape(str(path)) + r".*largest value is 4095 of 65535.*multiply "
                                            r"12-bit data by 16"):
        got = read_image(path, 4, 1)
    assert got[0].tolist() == [[0, 4, 8, 16]] * 4  # the documented result: round(v / 257)


# [D14] masks: non-zero on the raw values -----------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["uint16", "rgb", "float"])
def test_mask_storing_a_small_nonzero_value_marks_a_defect(tmp_path, kind):
    root = _folder(tmp_path / "d")
    raw = np.zeros((16, 16), np.uint16)
    raw[:8, :8] = 1  # top-left quarter is the defect, stored as 1
    if kind == "uint16":
        mask = Image.fromarray(raw)
    elif kind == "rgb":
        mask = Image.fromarray(np.stack([raw.astype(np.uint8), np.zeros_like(raw, np.uint8),
                                         np.zeros_like(raw, np.uint8)], axis=2), "RGB")
    else:
        mask = Image.fromarray(raw.astype(np.float32) * 0.5, "F")
    ext = "tif" if kind == "float" else "png"  # PNG cannot hold floats
    for i in range(2):
        if ext == "tif":  # the loader finds <stem>_mask<image suffix>: the defect images become TIFFs too
            (root / "test" / "crack" / f"{i}.png").unlink()
            _save(root / "test" / "crack" / f"{i}.tif", _grey(200))
        _save(root / "ground_truth" / "crack" / f"{i}_mask.{ext}", mask)
    ds = load("folder", path=str(root), image_size=8)
    expect = np.zeros((8, 8), np.uint8)
    expect[:4, :4] = 1
    masks = ds.test.masks.numpy()[:, 0]
    labels = ds.test.labels.tolist()
    assert labels == [0, 0, 1, 1]
    assert (masks[:2] == 0).all() and (masks[2] == expect).all() and (masks[3] == expect).all()
    direct = read_mask(root / "ground_truth" / "crack" / f"0_mask.{ext}", 16)
    assert direct.shape == (1, 16, 16) and (direct[0] == (raw != 0)).all()


# [D7] a mask of another size than its image ---------------------------------------------------------------
def test_mask_of_another_size_than_its_image_is_refused_naming_both(tmp_path):
    root = _folder(tmp_path / "d")
    for i in range(2):
        _save(root / "ground_truth" / "crack" / f"{i}_mask.png", _grey(255, (50, 30)))
    img, msk = root / "test" / "crack" / "0.png", root / "ground_truth" / "crack" / "0_mask.png"
    with pytest.raises(DatasetError, match=f"mask {re.escape(str(msk))} is 50x30 px but its image "
                                           f"{re.escape(str(img))} is 16x16 px"):
        load("folder", path=str(root), image_size=8)


# [S2] VisA split paths leaving the dataset folder --------------------------------------------------------------
@pytest.mark.parametrize("where", ["image-dotdot", "image-absolute", "mask-dotdot", "mask-absolute"])
def test_visa_split_path_outside_the_folder_is_refused(tmp_path, where):
    vroot = tmp_path / "data" / "visa"
    secret = _save(tmp_path / "outside" / "secret.png", Image.new("RGB", (20, 20), (1, 2, 3)))
    rows = ["object,split,label,image,mask"]
    for i in range(3):
        rel = f"candle/Data/Images/Normal/{i:04d}.png"
        _save(vroot / rel, Image.new("RGB", (20, 20), (100, 100, 100)))
        rows.append(f"candle,{'train' if i < 2 else 'test'},normal,{rel},")
    rel, mrel = "candle/Data/Images/Anomaly/0100.png", "candle/Data/Masks/Anomaly/0100.png"
    _save(vroot / rel, Image.new("RGB", (20, 20), (10, 10, 10)))
    _save(vroot / mrel, _grey(255, (20, 20)))
    rows.append(f"candle,test,anomaly,{rel},{mrel}")
    bad = "../../outside/secret.png" if where.endswith("dotdot") else str(secret)
    if where.startswith("image"):
        rows.append(f"candle,train,normal,{bad},")
    else:
        rows.append(f"candle,test,anomaly,{rel},{bad}")
    csv_path = vroot / "split_csv" / "1cls.csv"
    csv_path.parent.mkdir(parents=True)
    csv_path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DatasetError, match=f"{re.escape(str(csv_path))} line 6: path {re.escape(repr(bad))} points "
                                           f"outside the dataset folder"):
        load("visa", root=str(tmp_path / "data"), image_size=8, download=False)


# [D16, D17, D19] what is missing in test/ -------------------------------------------------------------------
@pytest.mark.parametrize("case,needle", [
    ("no-test-good", r"test has no 'good' folder: put normal test images in test/good"),
    ("empty-test-good", r"test/good holds no image file .*put normal test images in test/good"),
    ("no-defect", r"test has no defect folder: put anomalous images in test/<defect-name>/"),
    ("empty-defect", r"test has no defect folder \(empty: crack\): put anomalous images in test/<defect-name>/"),
])
def test_folder_without_test_good_or_defects_says_what_is_missing(tmp_path, case, needle):
    root = _folder(tmp_path / "d")
    if case == "no-test-good":
        for p in (root / "test" / "good").iterdir():
            p.unlink()
        (root / "test" / "good").rmdir()
    elif case == "empty-test-good":
        for p in (root / "test" / "good").iterdir():
            p.unlink()
    else:
        for p in (root / "test" / "crack").iterdir():
            p.unlink()
        if case == "no-defect":
            (root / "test" / "crack").rmdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the skipped empty defect folder
        with pytest.raises(DatasetError, match=re.escape(str(root)) + ".*" + needle):
            load("folder", path=str(root), image_size=8)


@pytest.mark.parametrize("part", ["test", "train"])
def test_normal_folder_spelt_with_a_capital_is_refused(tmp_path, part):
    root = _folder(tmp_path / "d", **{f"{part}_good": "Good"})
    with pytest.raises(DatasetError, match=f"found {re.escape(str(root / part / 'Good'))}; the normal folder must "
                                           r"be named 'good' \(lower case\)"):
        load("folder", path=str(root), image_size=8)


# [L3] a file given as the folder ------------------------------------------------------------------------------
@pytest.mark.parametrize("arg", ["root", "path"])
def test_a_file_given_as_the_dataset_folder_is_called_a_file(tmp_path, arg):
    f = tmp_path / "notes.txt"
    f.write_text("not a folder")
    with pytest.raises(DatasetError, match=f"{re.escape(str(f))} is a file, not a folder"):
        load("folder", **{arg: str(f)}, image_size=8)
