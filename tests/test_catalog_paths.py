from pathlib import Path

import pytest

from firs.catalog.paths import ImageRoots


def test_urls_pass_and_other_schemes_are_refused(tmp_path: Path) -> None:
    roots = ImageRoots.of(tmp_path)
    assert roots.resolve("https://h/x.jpg") == "https://h/x.jpg"
    assert roots.resolve("HTTP://h/x.jpg") == "http://h/x.jpg"
    for value in ("file:///etc/passwd", "ftp://h/x.jpg", "data://x"):
        with pytest.raises(ValueError, match="unsupported URL scheme"):
            roots.resolve(value)


def test_local_paths_resolve_from_the_folder_and_stay_inside(tmp_path: Path) -> None:
    folder = tmp_path / "cat"
    folder.mkdir()
    roots = ImageRoots.of(folder)
    assert roots.resolve("img/a.jpg") == str(folder.resolve() / "img" / "a.jpg")
    assert roots.resolve(str(folder / "b.jpg")) == str(folder.resolve() / "b.jpg")
    for value in ("/etc/passwd", "../secret.jpg", "img/../../secret.jpg", str(tmp_path / "cat-sibling" / "x.jpg")):
        with pytest.raises(ValueError, match="outside the catalogue's folder"):
            roots.resolve(value)
    with pytest.raises(ValueError, match="cannot be resolved"):
        roots.resolve("a\0b.jpg")


def test_extra_roots_and_symlinks(tmp_path: Path) -> None:
    folder, extra = tmp_path / "cat", tmp_path / "extra"
    folder.mkdir()
    extra.mkdir()
    (folder / "out").symlink_to(tmp_path)
    (folder / "in").symlink_to(extra)
    roots = ImageRoots.of(folder)
    with pytest.raises(ValueError, match=r"out/x.jpg \(.*x.jpg\) is outside"):
        roots.resolve("out/x.jpg")
    with pytest.raises(ValueError, match="outside"):
        roots.resolve("in/y.jpg")
    widened = ImageRoots.of(folder, [extra])
    assert widened.resolve("in/y.jpg") == str(extra.resolve() / "y.jpg")
    assert widened.allows(extra.resolve()) and not widened.allows(tmp_path.resolve())
