"""Checkpoints and restart on one process: the model file round trip, bit-for-bit
continuation, damaged files, --resume's fallback, refused changes, SIGTERM -> requeue."""
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from h2odl_mpi.training import checkpoint as ckpt
from h2odl_mpi.cli import main
from h2odl_mpi.errors import UserError
from h2odl_mpi.model.model_io import load_model
from h2odl_mpi.params import validate
from h2odl_mpi.training.trainer import train
from process_cpu import wait_for_cpu


def _csv(path, n=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] - 0.3 * x[:, 2] ** 2 > 0).astype(int)
    with open(path, "w") as f:
        f.write("a,b,c,d,label\n")
        for row, t in zip(x, y):
            f.write(",".join(f"{v:.5f}" for v in row) + f",{'yes' if t else 'no'}\n")
    return str(path)


def _params(data, **kw):
    p = {"train": data, "response": "label", "hidden": [8, 6], "epochs": 2, "seed": 7,
         "reproducible": True, "train_samples_per_iteration": 100, "overwrite_with_best_model": False,
         "stopping_rounds": 0, "classification_stop": -1.0, "quiet_mode": True}
    p.update(kw)
    return validate(p)


def test_save_load_predict_identical(tmp_path):
    data = _csv(tmp_path / "d.csv")
    s = train(_params(data, model_out=str(tmp_path / "m.h5")))
    network, buf, info, params, attrs = load_model(str(tmp_path / "m.h5"))
    assert np.array_equal(buf, s.model) and attrs["state"]["iteration"] == s["iterations"]
    from h2odl_mpi.data.frame import Frame
    rows = info.rows(Frame.read(data), training=False)
    a = s.network.predict(s.model, rows, "output", threads=1)
    b = network.predict(buf, rows, "output", threads=1)
    assert np.array_equal(a, b)
    pred = tmp_path / "p.csv"
    assert main(["predict", "--model", str(tmp_path / "m.h5"), "--data", data, "--out", str(pred)]) == 0
    p = np.loadtxt(pred, delimiter=",", skiprows=1, usecols=(1, 2))
    assert np.array_equal(p, np.loadtxt(pred, delimiter=",", skiprows=1, usecols=(1, 2)))
    np.testing.assert_allclose(p, info.correct_probabilities(b), rtol=1e-6)
    with h5py.File(tmp_path / "m.h5", "r") as f:  # plain HDF5, documented groups
        assert len(f["progress/rng_states"]) == 1 and "content_crc32" in f.attrs


def test_two_epochs_equal_one_plus_one_bit_for_bit(tmp_path):
    data = _csv(tmp_path / "d.csv")
    straight = train(_params(data, epochs=2))
    first = train(_params(data, epochs=1, model_out=str(tmp_path / "e1.h5")))
    assert not np.array_equal(first.model, straight.model)
    cont = train(_params(data, epochs=2, checkpoint=str(tmp_path / "e1.h5")))
    assert cont["iterations"] == straight["iterations"] == 6
    assert cont["training_samples"] == straight["training_samples"] == 600
    assert np.array_equal(cont.model, straight.model)


def test_mid_run_checkpoint_resumes_bit_for_bit(tmp_path):
    data = _csv(tmp_path / "d.csv")
    d = tmp_path / "ck"
    straight = train(_params(data, epochs=2, checkpoint_dir=str(d), checkpoint_interval="2it",
                             checkpoint_keep=0))
    names = sorted(os.listdir(d))
    assert names == [f"ckpt_{i:09d}.h5" for i in (2, 4, 6)]  # every 2 iterations and the end
    for n in names[1:]:
        os.unlink(d / n)  # as if killed after iteration 2
    resumed = train(_params(data, epochs=2, resume=str(d)))
    assert np.array_equal(resumed.model, straight.model)
    assert sorted(os.listdir(d))[-1] == "ckpt_000000006.h5"
    assert np.array_equal(train(_params(data, epochs=2)).model, straight.model)  # writing changes nothing


def test_checkpoint_keep_prunes(tmp_path):
    data = _csv(tmp_path / "d.csv")
    d = tmp_path / "ck"
    d.mkdir()
    (d / "ckpt_000000001.h5.tmp999").write_bytes(b"left by a killed writer")
    (d / "notes.txt").write_text("not ours")
    train(_params(data, epochs=2, checkpoint_dir=str(d), checkpoint_interval="1it", checkpoint_keep=2))
    assert sorted(os.listdir(d)) == ["ckpt_000000005.h5", "ckpt_000000006.h5", "notes.txt"]


def _flip_buffer_byte(path):
    with h5py.File(path, "r") as f:
        ds = f["network/layer_0/weights"]
        off = ds.id.get_offset() + ds.id.get_storage_size() // 2
    with open(path, "r+b") as fh:
        fh.seek(off)
        b = fh.read(1)
        fh.seek(off)
        fh.write(bytes([b[0] ^ 0x10]))


def test_damaged_files_are_detected_and_resume_falls_back(tmp_path, capfd):
    data = _csv(tmp_path / "d.csv")
    d = tmp_path / "ck"
    straight = train(_params(data, epochs=2, checkpoint_dir=str(d), checkpoint_interval="2it"))
    newest, middle, oldest = ckpt.list_checkpoints(str(d))
    _flip_buffer_byte(newest)
    with pytest.raises(UserError, match="checksum mismatch"):
        load_model(newest)
    with open(middle, "r+b") as fh:  # truncated, as by a full disk
        fh.truncate(os.path.getsize(middle) // 2)
    with pytest.raises(UserError, match="damaged or truncated"):
        load_model(middle)
    capfd.readouterr()
    resumed = train(_params(data, epochs=2, resume=str(d)))  # falls back to iteration 2
    err = capfd.readouterr().err
    assert err.count("skipping damaged checkpoint") == 2 and os.path.basename(newest) in err
    assert np.array_equal(resumed.model, straight.model)
    assert ckpt.newest_valid(str(d)) == newest  # rewritten at the end, valid again


def test_resume_starts_fresh_without_checkpoints(tmp_path):
    data = _csv(tmp_path / "d.csv")
    a = train(_params(data, epochs=1, resume=str(tmp_path / "none")))
    b = train(_params(data, epochs=1))
    assert np.array_equal(a.model, b.model)
    assert os.listdir(tmp_path / "none") == ["ckpt_000000003.h5"]


def test_changed_architecture_is_refused_naming_each_difference(tmp_path):
    data = _csv(tmp_path / "d.csv")
    train(_params(data, epochs=1, model_out=str(tmp_path / "m.h5")))
    with pytest.raises(UserError) as e:
        train(_params(data, epochs=2, hidden=[8, 5], activation="Tanh", checkpoint=str(tmp_path / "m.h5")))
    msg = str(e.value)
    assert "hidden: checkpoint [8, 6], now [8, 5]" in msg and "activation" in msg
    with pytest.raises(UserError, match="epochs = 1.0 must be larger"):
        train(_params(data, epochs=1, checkpoint=str(tmp_path / "m.h5")))
    # parameters H2O lets a continuation change are accepted
    s = train(_params(data, epochs=2, l2=1e-4, rho=0.95, train_samples_per_iteration=50,
                      checkpoint=str(tmp_path / "m.h5")))
    assert s["training_samples"] == 600 and s["train_samples_per_iteration"] == [50] * 6


def test_other_data_with_same_columns(tmp_path):
    train(_params(_csv(tmp_path / "a.csv"), epochs=1, model_out=str(tmp_path / "m.h5")))
    s = train(_params(_csv(tmp_path / "b.csv", n=200, seed=5), epochs=2, checkpoint=str(tmp_path / "m.h5")))
    assert s["training_samples"] == 300 + 200  # one more epoch on the 200 new rows


def test_bad_checkpoint_interval_names_itself():
    with pytest.raises(UserError, match="checkpoint_interval"):
        validate({"train": "x.csv", "response": "y", "checkpoint_interval": "10min"})
    assert ckpt.parse_interval("100it") == ("iterations", 100)
    assert ckpt.parse_interval("2.5") == ("seconds", 2.5)
    assert ckpt.parse_interval("0") == ("off", 0)


def _signal_and_wait(proc, signum, timeout):
    """Send signum; the process must exit within `timeout` s (else it is killed and the test
    fails).  Returns its stderr."""
    proc.send_signal(signum)
    try:
        return proc.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"no exit within {timeout} s of signal {signum}")


def test_sigterm_checkpoints_and_exits_with_requeue_code(tmp_path):
    data = _csv(tmp_path / "d.csv", n=2000)
    d = tmp_path / "ck"
    cmd = [sys.executable, "-m", "h2odl_mpi", "train", "--train", data, "--response", "label",
           "--hidden", "32,32", "--epochs", "100000", "--train_samples_per_iteration", "200",
           "--checkpoint_dir", str(d), "--checkpoint_interval", "5it", "--quiet_mode", "true",
           "--threads", "1", "--seed", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    t0 = time.time()
    while not ckpt.list_checkpoints(str(d)) and time.time() - t0 < 60 and proc.poll() is None:
        time.sleep(0.05)
    assert ckpt.list_checkpoints(str(d)), "no checkpoint written"
    err = _signal_and_wait(proc, signal.SIGTERM, 10)
    assert proc.returncode == ckpt.REQUEUE_EXIT_CODE, err
    assert "requeue" in err
    path = ckpt.newest_valid(str(d))
    _, _, _, _, attrs = load_model(path)
    done = attrs["state"]["samples"]
    assert done > 0
    r = subprocess.run(cmd[:cmd.index("--epochs") + 1] + [str(done / 2000 + 1)] +
                       cmd[cmd.index("--epochs") + 2:] + ["--resume", str(d), "--summary_json",
                                                          str(tmp_path / "s.json")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    import json
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["training_samples"] == done + 2000


def test_other_data_with_new_or_missing_columns_is_refused(tmp_path):
    data = _csv(tmp_path / "d.csv")
    train(_params(data, epochs=1, model_out=str(tmp_path / "m.h5")))
    lines = open(data).read().splitlines()
    extra = tmp_path / "extra.csv"
    extra.write_text("\n".join([lines[0] + ",e"] + [l + ",1.5" for l in lines[1:]]) + "\n")
    with pytest.raises(UserError, match=r"does not use \(add them to ignored_columns\): e"):
        train(_params(str(extra), epochs=2, checkpoint=str(tmp_path / "m.h5")))
    s = train(_params(str(extra), epochs=2, ignored_columns=["e"], checkpoint=str(tmp_path / "m.h5")))
    assert s["training_samples"] == 600
    fewer = tmp_path / "fewer.csv"
    fewer.write_text("\n".join(",".join(l.split(",")[1:]) for l in lines) + "\n")
    with pytest.raises(UserError, match="input columns missing from the data: a"):
        train(_params(str(fewer), epochs=2, checkpoint=str(tmp_path / "m.h5")))


def test_export_weights_and_biases_as_csv(tmp_path):
    data = _csv(tmp_path / "d.csv")
    s = train(_params(data, epochs=1, model_out=str(tmp_path / "m.h5"), export_weights_and_biases=True))
    net, model = s.network, s.model
    d = tmp_path / "m.h5.weights"
    assert sorted(os.listdir(d)) == sorted([f"{k}_{l}.csv" for k in ("weights", "biases") for l in (1, 2, 3)])
    assert open(d / "weights_1.csv").readline().strip() == "a,b,c,d"
    for layer in range(3):
        w = np.loadtxt(d / f"weights_{layer + 1}.csv", delimiter=",", skiprows=1, ndmin=2).astype(np.float32)
        b = np.loadtxt(d / f"biases_{layer + 1}.csv", delimiter=",", skiprows=1, ndmin=1).astype(np.float32)
        assert np.array_equal(w, net.view(model, "weights", layer))  # 9 digits: float32 exactly
        assert np.array_equal(b, net.view(model, "biases", layer))
    with pytest.raises(UserError, match="model_out"):
        _params(data, export_weights_and_biases=True)


def test_pretrained_autoencoder_initialises_hidden_layers(tmp_path):
    from h2odl_mpi.training import model_setup
    data = _csv(tmp_path / "d.csv")
    ae = tmp_path / "ae.h5"
    train(validate({"train": data, "autoencoder": True, "ignored_columns": ["label"], "hidden": [8, 6],
                    "epochs": 2, "seed": 3, "reproducible": True, "quiet_mode": True, "model_out": str(ae)}))
    ae_net, ae_model, _, _, _ = load_model(str(ae))
    seen = {}
    real = model_setup.copy_pretrained

    def spy(params, comm, network, model, info):
        fresh = model.copy()
        real(params, comm, network, model, info)
        seen.update(net=network, before=fresh, after=model.copy())
    model_setup.copy_pretrained = spy
    try:
        s = train(_params(data, epochs=1, pretrained_autoencoder=str(ae)))
    finally:
        model_setup.copy_pretrained = real
    net, after = seen["net"], seen["after"]
    for layer in (0, 1):  # input and hidden layers come from the autoencoder
        for name in ("weights", "biases"):
            assert np.array_equal(net.view(after, name, layer), ae_net.view(ae_model, name, layer))
    # the output layer keeps its fresh weights; the optimizer state starts at zero
    assert np.array_equal(net.view(after, "weights", 2), net.view(seen["before"], "weights", 2))
    assert not np.array_equal(s.model, after)  # and then it trained
    with pytest.raises(UserError, match=r"hidden: autoencoder \[8, 6\], now \[8, 5\]"):
        train(_params(data, epochs=1, hidden=[8, 5], pretrained_autoencoder=str(ae)))
    sup = tmp_path / "sup.h5"
    train(_params(data, epochs=1, model_out=str(sup)))
    with pytest.raises(UserError, match="not an autoencoder"):
        train(_params(data, epochs=1, pretrained_autoencoder=str(sup)))
    with pytest.raises(UserError, match="autoencoder must be false"):
        _params(data, autoencoder=True, pretrained_autoencoder=str(ae))


def test_flipped_attribute_byte_is_found(tmp_path):
    data = _csv(tmp_path / "d.csv")
    path = str(tmp_path / "m.h5")
    train(_params(data, epochs=1, model_out=path))
    raw = bytearray(open(path, "rb").read())
    i = raw.find(b'"hidden": [8, 6]')  # inside the parameters attribute
    assert i > 0
    raw[i + 11] = ord("9")
    open(path, "wb").write(bytes(raw))
    with pytest.raises(UserError, match="checksum mismatch"):
        load_model(path)


def test_a_signal_inside_one_long_iteration_stops_within_a_block(tmp_path):
    """One iteration of 20 million rows: the signal is answered within a block of rows."""
    data = _csv(tmp_path / "d.csv", n=2000)
    d = tmp_path / "ck"
    cmd = [sys.executable, "-m", "h2odl_mpi", "train", "--train", data, "--response", "label",
           "--hidden", "64,64", "--epochs", "10000", "--train_samples_per_iteration", "20000000",
           "--checkpoint_dir", str(d), "--threads", "1", "--seed", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert "rank(s)" in proc.stdout.readline()
    # drawing the 20 million row indices takes about a CPU second before the first row trains
    wait_for_cpu(proc.pid, 3.0)  # then training, however loaded the machine
    err = _signal_and_wait(proc, signal.SIGUSR1, 15)  # the whole iteration would take minutes
    assert proc.returncode == ckpt.REQUEUE_EXIT_CODE, err
    state = load_model(ckpt.newest_valid(str(d)))[4]["state"]
    assert state["iteration"] == 1 and 0 < state["samples"] < 20_000_000


def test_blocks_of_rows_train_as_one_call_on_one_thread(tmp_path):
    """The trainer splits an iteration into blocks (to answer signals quickly); on one
    thread that gives the same bits as one kernel call over all the rows."""
    from h2odl_mpi.data.frame import Frame
    from h2odl_mpi.kernel import NetConfig, Network
    from h2odl_mpi.data.preprocess import Preprocess
    from h2odl_mpi.training.hogwild import Blocks
    data = _csv(tmp_path / "d.csv", n=1000)
    frame = Frame.read(data)
    info = Preprocess.fit(frame, _params(data))
    rows = info.rows(frame)
    net = Network(NetConfig(units=[info.n_inputs, 16, 2], activation="Rectifier", output="softmax",
                            loss="Quadratic", input_dropout_ratio=0.1, hidden_dropout_ratios=[0.3]))
    order = np.random.default_rng(0).integers(0, 1000, 3000)
    one = net.new_model(5)
    net.train(one, rows, order, samples_before=70, seed=11, threads=1)
    split = net.new_model(5)
    blocks = Blocks(net, 1, ckpt.StopFlag(), seconds=1e-4)  # tiny blocks: many calls
    assert blocks.train(split, rows, order, 70, 11) == (3000, False)
    assert blocks.block < 3000
    assert np.array_equal(one, split)
    flag = ckpt.StopFlag()
    flag.signum = signal.SIGTERM  # a signal: no more blocks
    assert Blocks(net, 1, flag).train(net.new_model(5), rows, order, 0, 11) == (0, False)


def test_a_signal_before_training_checkpoints_the_starting_model(tmp_path):
    from h2odl_mpi.training import trainer
    data = _csv(tmp_path / "d.csv")
    d = tmp_path / "ck"
    real = trainer.Preprocess.fit

    def fit_then_signal(*args, **kwargs):  # SIGTERM while the data is being prepared
        out = real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        return out
    trainer.Preprocess.fit = fit_then_signal
    try:
        with pytest.raises(ckpt.TrainingInterrupted):
            train(_params(data, epochs=2, checkpoint_dir=str(d)))
    finally:
        trainer.Preprocess.fit = real
    assert os.listdir(d) == ["ckpt_000000000.h5"]
    _, buf, _, _, attrs = load_model(str(d / "ckpt_000000000.h5"))
    assert attrs["state"]["samples"] == 0 and attrs["state"]["iteration"] == 0 and attrs["history"] == []
    resumed = train(_params(data, epochs=2, resume=str(d)))
    assert np.array_equal(resumed.model, train(_params(data, epochs=2)).model)


def test_a_signal_while_mpi_starts_is_not_lost(tmp_path):
    """The CLI catches the signal from before MPI starts: a SIGUSR1 that arrives during
    start-up (here: inside the call that initialises MPI) ends in a checkpoint and exit 85,
    not in the default action (death)."""
    data = _csv(tmp_path / "d.csv")
    d = tmp_path / "ck"
    script = (
        "import os, signal, sys\n"
        "from h2odl_mpi import cli\n"
        "real = cli._comm\n"
        "def comm():\n"
        "    c = real()\n"
        "    os.kill(os.getpid(), signal.SIGUSR1)\n"
        "    return c\n"
        "cli._comm = comm\n"
        "sys.exit(cli.main(sys.argv[1:]))\n")
    r = subprocess.run([sys.executable, "-c", script, "train", "--train", data, "--response", "label",
                        "--hidden", "4", "--epochs", "5", "--checkpoint_dir", str(d), "--quiet_mode", "true"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == ckpt.REQUEUE_EXIT_CODE, r.stderr
    assert "signal 10" in r.stderr and os.listdir(d) == ["ckpt_000000000.h5"]


def test_unwritable_outputs_fail_before_the_data_is_read(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for key in ("checkpoint_dir", "model_out"):
        target = str(blocker / "sub" / ("m.h5" if key == "model_out" else ""))
        p = validate({"train": str(tmp_path / "missing.csv"), "response": "y", key: target})
        with pytest.raises(UserError, match=f"{key}: cannot write into .*a_file"):
            train(p)  # the missing training file is not reached


def test_a_failed_checkpoint_write_names_the_file(tmp_path, monkeypatch):
    from h2odl_mpi.training import outputs

    def disk_full(path, *args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(outputs, "save_model", disk_full)
    data = _csv(tmp_path / "d.csv")
    with pytest.raises(UserError, match=r"ckpt_000000001\.h5: cannot write: No space left on device"):
        train(_params(data, checkpoint_dir=str(tmp_path / "ck"), checkpoint_interval="1it"))


# ------------------------------------------------------------------- a resume never lies
def test_resume_with_other_parameters_is_refused_naming_each_and_writes_nothing(tmp_path):
    data = _csv(tmp_path / "d.csv")
    d = str(tmp_path / "ck")
    train(_params(data, epochs=2, checkpoint_dir=d))
    out = tmp_path / "exp2.h5"
    with pytest.raises(UserError) as e:  # a second experiment in the same directory
        train(_params(data, epochs=3, input_dropout_ratio=0.1, l2=1e-4, resume=d, checkpoint_dir=d,
                      model_out=str(out)))
    msg = str(e.value)
    assert "input_dropout_ratio: checkpoint 0.0, now 0.1" in msg and "l2: checkpoint 0.0, now 0.0001" in msg, msg
    assert "another checkpoint_dir" in msg and "\n" not in msg
    assert not out.exists() and sorted(os.listdir(d)) == ["ckpt_000000006.h5"]
    with pytest.raises(UserError, match=r"has trained 2 epochs, more than epochs = 1"):
        train(_params(data, epochs=1, resume=d, checkpoint_dir=d, model_out=str(out)))
    assert not out.exists()
    # what a continued run may change: epochs upward, stopping and scoring, outputs, threads
    more = train(_params(data, epochs=3, resume=d, checkpoint_dir=d, stopping_rounds=2, score_interval=1,
                         model_out=str(out), threads=2))
    assert more["iterations"] == 9 and out.exists()


def test_resume_of_a_finished_run_says_so(tmp_path, capsys):
    data = _csv(tmp_path / "d.csv")
    d = str(tmp_path / "ck")
    done = train(_params(data, epochs=2, checkpoint_dir=d))
    again = train(_params(data, epochs=2, resume=d, checkpoint_dir=d, quiet_mode=False))
    assert "has trained its 2 epochs: nothing to train" in capsys.readouterr().out
    assert np.array_equal(again.model, done.model) and again["iterations"] == done["iterations"]


def test_the_speed_of_a_resumed_run_counts_its_own_samples(tmp_path):
    data = _csv(tmp_path / "d.csv")
    d = str(tmp_path / "ck")
    first = train(_params(data, epochs=4, checkpoint_dir=d))
    second = train(_params(data, epochs=5, resume=d, checkpoint_dir=d))
    trained = second["training_samples"] - first["training_samples"]
    assert trained == 300 and second["training_samples"] == 1500
    assert second["samples_per_s"] * second["training_time_s"] == pytest.approx(trained, rel=1e-9)


def test_train_without_model_out_says_where_the_model_is(tmp_path, capsys):
    data = _csv(tmp_path / "d.csv")
    base = ["train", "--train", data, "--response", "label", "--hidden", "4", "--epochs", "1",
            "--threads", "1", "--quiet_mode", "true"]
    assert main(base) == 0
    assert "the model was not saved (give --model_out FILE)" in capsys.readouterr().err
    d = str(tmp_path / "ck")
    assert main(base + ["--checkpoint_dir", d]) == 0
    err = capsys.readouterr().err
    final = ckpt.list_checkpoints(d)[0]
    assert f"the model is the final checkpoint {final}" in err and load_model(final)[4]["state"]
    assert main(base + ["--model_out", str(tmp_path / "m.h5")]) == 0
    assert "no model_out" not in capsys.readouterr().err
