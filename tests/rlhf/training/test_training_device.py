import pytest
import torch

from rlhf.training.device import omp_advice, pick_device, pick_dtype, trainer_kwargs

pytestmark = pytest.mark.training


def test_cpu_gets_fp32_use_cpu_and_no_checkpointing():
    device = torch.device("cpu")
    dtype = pick_dtype("auto", device)
    assert dtype == torch.float32
    kw = trainer_kwargs(device, dtype, n_params=10_000_000_000)
    assert kw["bf16"] is False and kw["fp16"] is False
    assert kw["use_cpu"] is True and kw["activation_checkpointing"] is False


def test_auto_device_without_gpu_is_cpu():
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("this machine has an accelerator")
    assert pick_device("auto").type == "cpu"
    with pytest.raises(ValueError, match="cuda"):
        pick_device("cuda")


def test_trl_config_built_from_our_fields_has_no_bf16_on_cpu(tmp_path):
    from trl import DPOConfig

    kw = trainer_kwargs(torch.device("cpu"), torch.float32, 1000)
    cfg = DPOConfig(output_dir=str(tmp_path), report_to="none", **kw)
    assert cfg.bf16 is False and cfg.gradient_checkpointing is False and cfg.use_cpu is True


def test_omp_advice(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert omp_advice() is None
    monkeypatch.delenv("OMP_NUM_THREADS")
    if not torch.cuda.is_available():
        assert "OMP_NUM_THREADS" in omp_advice()
