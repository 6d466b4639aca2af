"""The Deep Learning booklet's h2o-py examples (seed 002: section 6, MNIST; section 7.2, the
ECG autoencoder), line by line, with h2odl_mpi in place of h2o.

What differs from the booklet, and only that: the imports (`from h2odl_mpi import h2o`,
`from h2odl_mpi import DeepLearningEstimator as H2ODeepLearningEstimator`), the files (the
bundled copies in h2odl_mpi/datasets instead of the URLs), the epochs (1 and 2 instead of 10
and 20 for MNIST), and Python 3's print.  An h2o-py script with a grid search
(H2OGridSearch, as section 6.4's) and h2o.get_model is tests/test_h2o_script.py's."""
import numpy as np
import pytest


@pytest.fixture
def DATA(data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # h2o.save_model without a path writes into the current directory
    return str(data_dir)


@pytest.fixture(scope="module")
def mnist(data_dir):
    """Section 6.1 and 6.2: the data, and the trial run's model."""
    DATA = str(data_dir)
    from h2odl_mpi import h2o  # import h2o

    # Start H2O cluster with all available cores (default)
    h2o.init()

    train = h2o.import_file(f"{DATA}/mnist/train.csv.gz")
    test = h2o.import_file(f"{DATA}/mnist/test.csv.gz")

    # Get a brief summary of the data
    train.describe()
    test.describe()

    # 6.2 Performing a trial run
    from h2odl_mpi import DeepLearningEstimator as H2ODeepLearningEstimator

    # Specify the response and predictor columns
    y = "C785"
    x = train.names[0:784]

    # Encode the response column as categorical for multinomial classification
    train[y] = train[y].asfactor()
    test[y] = test[y].asfactor()

    # Train Deep Learning model and validate on test set
    model = H2ODeepLearningEstimator(
        distribution="multinomial",
        activation="RectifierWithDropout",
        hidden=[32, 32, 32],
        input_dropout_ratio=0.2,
        sparse=True,
        l1=1e-5,
        epochs=1)
    model.train(
        x=x,
        y=y,
        training_frame=train,
        validation_frame=test)
    return dict(h2o=h2o, H2ODeepLearningEstimator=H2ODeepLearningEstimator, train=train, test=test,
                x=x, y=y, model=model)


def test_mnist_trial_run_results_and_predictions(mnist, capsys):
    model, test, train, y = mnist["model"], mnist["test"], mnist["train"], mnist["y"]
    assert train[y].isfactor() and model.info_.n_classes == 10

    # 6.2.2 Extracting and handling the results
    # View specified parameters of the Deep Learning model
    params = model.params
    assert params["hidden"]["actual"] == [32, 32, 32] and params["hidden"]["default"] == (200, 200)
    assert params["epochs"]["input"] == 1 and params["activation"]["actual"] == "RectifierWithDropout"

    # Examine the performance of the trained model
    print(model)  # display all performance metrics
    assert "Status of Neuron Layers" in capsys.readouterr().out

    train_perf = model.model_performance(train=True)  # training metrics
    valid_perf = model.model_performance(valid=True)  # validation metrics
    assert 0 < train_perf.logloss() and valid_perf.nobs() == 10000

    # Get MSE only
    mse = model.mse(valid=True)
    assert mse == valid_perf.mse() and 0 < mse < 1

    # Classify the test set (predict class labels)
    # This also returns the probability for each class
    pred = model.predict(test)

    # Take a look at the predictions
    head = pred.head()
    assert pred.columns == ["predict"] + [f"p{k}" for k in range(10)] and pred.nrow == 10000
    assert head.nrow == 10 and pred.types["predict"] == "enum"  # an H2OFrame, as h2o-py's
    np.testing.assert_allclose(head.as_data_frame().iloc[:, 1:].sum(axis=1), 1.0, rtol=1e-5)
    # the labels are the metrics' labels (the booklet's one short epoch with sparse=True, inputs
    # divided by their sd and not centred as H2O's DESCALE, learns too little to bound the error)
    accuracy = (pred["predict"] == test["C785"]).mean()[0]
    assert accuracy == pytest.approx(1 - model.model_performance(test).classification_error(), abs=1e-12)


def test_mnist_cross_validation(mnist):
    H2ODeepLearningEstimator, train, x, y = (mnist[k] for k in ("H2ODeepLearningEstimator", "train", "x", "y"))

    # 6.2.1 N-fold cross-validation: perform 5-fold cross-validation on training_frame
    model_cv = H2ODeepLearningEstimator(
        distribution="multinomial",
        activation="RectifierWithDropout",
        hidden=[32, 32, 32],
        input_dropout_ratio=0.2,
        sparse=True,
        l1=1e-5,
        epochs=1,
        nfolds=5)
    model_cv.train(
        x=x,
        y=y,
        training_frame=train)

    # Cross-validated MSE
    xval_mse = model_cv.mse(xval=True)
    assert 0 < xval_mse < 1 and model_cv.model_performance(xval=True).mse() == xval_mse


def test_mnist_variable_importances(mnist):
    H2ODeepLearningEstimator, train, test, x, y = (mnist[k] for k in ("H2ODeepLearningEstimator", "train", "test",
                                                                      "x", "y"))

    # 6.3.1 Variable importances
    # Train Deep Learning model and validate on test set and save the variable importances
    model_vi = H2ODeepLearningEstimator(
        distribution="multinomial",
        activation="RectifierWithDropout",
        hidden=[32, 32, 32],
        input_dropout_ratio=0.2,
        sparse=True,
        l1=1e-5,
        epochs=1,
        variable_importances=True)

    model_vi.train(
        x=x,
        y=y,
        training_frame=train,
        validation_frame=test)

    # Retrieve the variable importance
    vi = model_vi.varimp()
    assert vi[0][2] == 1.0 and len(vi) == model_vi.info_.n_inputs
    assert abs(sum(v[3] for v in vi) - 1) < 1e-9


def test_mnist_checkpoint_save_and_load(mnist, DATA):
    h2o, H2ODeepLearningEstimator, model = mnist["h2o"], mnist["H2ODeepLearningEstimator"], mnist["model"]
    train, test, x, y = (mnist[k] for k in ("train", "test", "x", "y"))

    # 6.5 Checkpoint models: re-start the training process on a saved DL model using the
    # 'checkpoint' argument
    model_chkp = H2ODeepLearningEstimator(
        checkpoint=model,
        distribution="multinomial",
        activation="RectifierWithDropout",
        hidden=[32, 32, 32],
        input_dropout_ratio=0.2,
        sparse=True,
        l1=1e-5,
        epochs=2)

    model_chkp.train(
        x=x,
        y=y,
        training_frame=train,
        validation_frame=test)
    assert model_chkp.summary_["training_samples"] == 2 * model.summary_["training_samples"]
    assert model_chkp.summary_["continued_from"] == model.model_id_ == model_chkp.params_["checkpoint"]

    # Specify a model and the file path where it is to be saved.  If no path is specified,
    # the model will be saved to the current working directory
    model_path = h2o.save_model(
        model=model,
        # path = "mymodel",
        force=True)

    print(model_path)

    # Load model from disk
    saved_model = h2o.load_model(model_path)
    assert saved_model.predict(test).as_data_frame().equals(model.predict(test).as_data_frame())
    assert saved_model.model_id == model.model_id and h2o.get_model(model.model_id) is saved_model  # (it replaced it)


def test_ecg_autoencoder_booklet_example(DATA):
    from h2odl_mpi import h2o

    # Import ECG train and test data into the H2O cluster
    from h2odl_mpi import AutoEncoderEstimator as H2OAutoEncoderEstimator

    train_ecg = h2o.import_file(f"{DATA}/ecg/ecg_discord_train.csv")
    test_ecg = h2o.import_file(f"{DATA}/ecg/ecg_discord_test.csv")

    # Train deep autoencoder learning model on "normal" training data, y ignored
    anomaly_model = H2OAutoEncoderEstimator(
        activation="Tanh",
        hidden=[50, 50, 50],
        sparse=True,
        l1=1e-4,
        epochs=100)  # (the booklet's: 20 rows, 2,000 samples)
    anomaly_model.train(
        x=train_ecg.names,
        training_frame=train_ecg)

    # Compute reconstruction error with the Anomaly detection app (MSE between output and
    # input layers)
    recon_error = anomaly_model.anomaly(test_ecg)

    # Note: Testing = Reconstructing the test dataset
    test_recon = anomaly_model.predict(test_ecg)
    test_recon

    # the test file is the 20 training heartbeats and 3 anomalous ones: the 3 largest errors
    e = recon_error["Reconstruction.MSE"].as_data_frame().iloc[:, 0].to_numpy()
    assert len(e) == 23 and sorted(np.argsort(e)[-3:]) == [20, 21, 22]
    assert e[20:].min() > 10 * np.median(e[:20])
    assert test_recon.shape == (23, 210) and test_recon.columns[0] == "reconstr_C1"
    test_recon = test_recon.as_data_frame()
    # the reconstruction is in the data's units: close to the heartbeats it was trained on
    data = test_ecg.as_data_frame().to_numpy()
    assert np.abs(test_recon.to_numpy()[:20] - data[:20]).mean() < np.abs(data[:20] - data[:20].mean()).mean()
