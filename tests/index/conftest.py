import pytest

from rhip.index import read_data, read_framework

ASEM = "/work/shared/data/coinr-asem/"


@pytest.fixture(scope="session")
def asem():
    fw = read_framework(ASEM + "ASEM_iMeta.csv")
    return fw, read_data(ASEM + "ASEM_iData.csv", fw)


@pytest.fixture(scope="session")
def asem_panel():
    fw = read_framework(ASEM + "ASEM_iMeta.csv")
    return fw, read_data(ASEM + "ASEM_iData_panel.csv", fw)
