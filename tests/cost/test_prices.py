from __future__ import annotations

import pytest

from kopilot.cost import prices
from kopilot.model import errors, resources


def test_defaults_are_opencost_on_prem_prices() -> None:
    book = prices.PriceBook()
    assert (book.cpu_core_hour, book.ram_gib_hour, book.gpu_hour) == (0.031611, 0.004237, 0.95)


def test_yaml_price_book_with_gpu_models() -> None:
    book = prices.parse("cpu_core_hour: 0.05\ngpu_models:\n  A100-80GB: 3.2\n", source="p.yaml")
    assert book.cpu_core_hour == 0.05
    assert book.ram_gib_hour == prices.DEFAULT_RAM_GIB_HOUR
    assert book.gpu_price("A100-80GB") == 3.2
    assert book.gpu_price("T4") == prices.DEFAULT_GPU_HOUR


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gpu_hour: -1\n", "gpu_hour: "),
        ("cpu_core_hour: cheap\n", "cpu_core_hour: "),
        ("gpu_modles: {}\n", "gpu_modles: "),
        ("gpu_models:\n  A100: -2\n", "gpu_models.A100: "),
        ("- 1\n- 2\n", "must be a mapping of fields"),
        ("cpu_core_hour: [\n", "not valid YAML"),
    ],
)
def test_bad_price_book_names_file_and_field(text: str, expected: str) -> None:
    with pytest.raises(errors.InvalidInputError) as e:
        prices.parse(text, source="prices.yaml")
    assert "prices.yaml" in str(e.value)
    assert expected in str(e.value)


@pytest.mark.parametrize(
    ("profile", "share"),
    [
        ("1g.10gb", 1 / 7),
        ("1g.20gb", 2 / 8),
        ("2g.20gb", 2 / 7),
        ("3g.40gb", 4 / 8),
        ("4g.40gb", 4 / 7),
        ("7g.80gb", 1.0),
    ],
)
def test_mig_slice_priced_by_the_share_it_blocks(profile: str, share: float) -> None:
    assert prices.mig_share("A100-80GB", profile) == pytest.approx(share)


def test_gpu_share_counts_whole_fractional_and_mig() -> None:
    assert prices.gpu_share(resources.Resources(gpus=2)) == 2.0
    assert prices.gpu_share(resources.Resources(gpu_milli=250)) == 0.25
    mig = resources.Resources(mig={"3g.40gb": 1, "1g.10gb": 2})
    assert prices.gpu_share(mig, model="A100-80GB") == pytest.approx(0.5 + 2 / 7)
    with pytest.raises(errors.InvalidInputError, match="unknown MIG profile"):
        prices.mig_share("A100-80GB", "9g.99gb")
