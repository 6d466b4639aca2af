"""Every H2O-3 Deep Learning parameter and what this version does with it: supported, supported
with a difference, accepted and meaningless here, or not supported (params.check_implemented
refuses those with the note as the reason; params.notes says the differences)."""
from h2odl_mpi._kernel import lib

MAX_HIDDEN_LAYERS = lib.H2O_MAX_LAYERS - 1  # the kernel's compile-time limit, less the output layer

# H2O-3 3.46's Deep Learning parameters in h2o-py's order (H2ODeepLearningEstimator), then two
# names H2O users pass with them: nthreads (h2o.init's) and max_hit_ratio_k (older H2O-3's)
H2O_NAMES = tuple((
    "model_id training_frame validation_frame nfolds keep_cross_validation_models keep_cross_validation_predictions "
    "keep_cross_validation_fold_assignment fold_assignment fold_column response_column ignored_columns "
    "ignore_const_cols score_each_iteration weights_column offset_column balance_classes class_sampling_factors "
    "max_after_balance_size max_confusion_matrix_size checkpoint pretrained_autoencoder overwrite_with_best_model "
    "use_all_factor_levels standardize activation hidden epochs train_samples_per_iteration target_ratio_comm_to_comp "
    "seed adaptive_rate rho epsilon rate rate_annealing rate_decay momentum_start momentum_ramp momentum_stable "
    "nesterov_accelerated_gradient input_dropout_ratio hidden_dropout_ratios l1 l2 max_w2 initial_weight_distribution "
    "initial_weight_scale initial_weights initial_biases loss distribution quantile_alpha tweedie_power huber_alpha "
    "score_interval score_training_samples score_validation_samples score_duty_cycle classification_stop "
    "regression_stop stopping_rounds stopping_metric stopping_tolerance max_runtime_secs score_validation_sampling "
    "diagnostics fast_mode force_load_balance variable_importances replicate_training_data single_node_mode "
    "shuffle_training_data missing_values_handling quiet_mode autoencoder sparse col_major average_activation "
    "sparsity_beta max_categorical_features reproducible export_weights_and_biases mini_batch_size "
    "categorical_encoding elastic_averaging elastic_averaging_moving_rate elastic_averaging_regularization "
    "export_checkpoints_dir auc_type custom_metric_func gainslift_bins").split())
H2O_OTHER_NAMES = ("nthreads", "max_hit_ratio_k")
SUPPORTED, DIFFERENT, MEANINGLESS, NOT_SUPPORTED = ("supported", "supported, with a difference",
                                                   "accepted, meaningless here", "not supported")
ANY = None  # inert values of an accepted parameter: every value changes nothing here
_INIT = ("here H2O frame ids; in Python H2OFrames or arrays, one per layer (model.weights(i) / biases(i)'s "
         "shapes), or start from a model with --pretrained_autoencoder or --checkpoint")
# The one table: name -> (status, note, how).  how is None for a SPEC parameter (under its name
# or ALIASES'); for a name SPEC lacks, (type, H2O's default, inert): the values that change
# nothing here (ANY: all) are accepted (notes() says so), others refused with the note as the
# reason (check_implemented).
H2O_PARAMETERS = {name: (SUPPORTED, "", None) for name in H2O_NAMES + H2O_OTHER_NAMES}
H2O_PARAMETERS.update({
    "model_id": (MEANINGLESS, "H2O's key for the model; the model is the file --model_out names", (str, None, ANY)),
    "training_frame": (DIFFERENT, "a data file (a list, directory or glob of files), not an H2O frame", None),
    "validation_frame": (DIFFERENT, "a data file, not an H2O frame", None),
    "response_column": (DIFFERENT, "a shorter name (--response_column works too)", None),
    "keep_cross_validation_models": (DIFFERENT, "the fold models are files written next to --model_out", None),
    "keep_cross_validation_predictions": (DIFFERENT, "a CSV file written next to --model_out", None),
    "keep_cross_validation_fold_assignment": (DIFFERENT, "a CSV file written next to --model_out", None),
    "score_each_iteration": (DIFFERENT, "scores after every iteration (score_interval 0, score_duty_cycle 1)",
                             (bool, False, ANY)),
    "max_confusion_matrix_size": (MEANINGLESS, "deprecated in H2O-3; it sized matrices in H2O's logs", (int, 20, ANY)),
    "checkpoint": (DIFFERENT, "a model file (--model_out's, or a checkpoint); in Python also a model or its "
                              "model_id", None),
    "pretrained_autoencoder": (DIFFERENT, "an autoencoder's model file; in Python also the model or its model_id", None),
    "hidden": (DIFFERENT, f"at most {MAX_HIDDEN_LAYERS} hidden layers (the kernel's limit); [] none, as H2O-3", None),
    "max_w2": (DIFFERENT, "inf, as H2O-3's default 3.4028235e+38 (the largest float), means no limit", None),
    "initial_weights": (NOT_SUPPORTED, f"they are {_INIT}", (list, None, (None, []))),
    "initial_biases": (NOT_SUPPORTED, f"they are {_INIT}", (list, None, (None, []))),
    "loss": (DIFFERENT, "ModifiedHuber (H2O-3's Java API only) is refused", None),
    "distribution": (DIFFERENT, "modified_huber, quasibinomial and custom are refused", None),
    "stopping_metric": (DIFFERENT, "lift_top_group, custom and custom_increasing are refused", None),
    "diagnostics": (MEANINGLESS, "deprecated in H2O-3, which always computes its diagnostics", (bool, True, ANY)),
    "force_load_balance": (MEANINGLESS, "H2O re-chunks a small frame to keep its cores busy; here the kernel "
                                        "threads always split a rank's rows evenly", (bool, True, ANY)),
    "single_node_mode": (MEANINGLESS, "the ranks mpirun starts are the cluster: to train on one node, start one "
                                      "rank (mpirun -n 1)", (bool, False, ANY)),
    "col_major": (MEANINGLESS, "deprecated in H2O-3, which refuses true too", (bool, False, (False,))),
    "average_activation": (NOT_SUPPORTED, "the sparse autoencoder is not implemented", (float, 0.0, (0.0,))),
    "sparsity_beta": (NOT_SUPPORTED, "the sparse autoencoder is not implemented", (float, 0.0, (0.0,))),
    "export_weights_and_biases": (DIFFERENT, "CSV files in the directory <model_out>.weights, not H2O frames", None),
    "mini_batch_size": (DIFFERENT, "H2O-3 ignores it (always 1); here B > 1 trains B rows per update", None),
    "categorical_encoding": (DIFFERENT, "Enum, OneHotExplicit, Eigen and EnumLimited are refused", None),
    "elastic_averaging": (DIFFERENT, "combining_rule ElasticAveraging; combining_rule AUTO is BlockMomentum here, "
                                     "H2O-3 averages the ranks' models (combining_rule Average)", None),
    "export_checkpoints_dir": (NOT_SUPPORTED, "--model_out FILE writes the model, --checkpoint_dir DIR checkpoints, "
                                              "grid --search_dir DIR keeps every model", (str, None, (None, ""))),
    "auc_type": (NOT_SUPPORTED, "train computes no multinomial AUC; evaluate --auc_type TYPE does, for a saved "
                                "model", (str, "AUTO", ("AUTO", "NONE"))),
    "custom_metric_func": (NOT_SUPPORTED, "it names a function uploaded to an H2O cluster", (str, None, (None, ""))),
    "gainslift_bins": (NOT_SUPPORTED, "only H2O's automatic binning (-1) of the gains/lift table is implemented",
                       (int, -1, (-1,))),
    "nthreads": (MEANINGLESS, "h2o.init's thread count: --threads sets the kernel threads per rank", (int, -1, ANY)),
    "max_hit_ratio_k": (NOT_SUPPORTED, "older H2O-3's; here the top-10 hit ratios are always computed",
                        (int, 0, (0, 10))),
})
# the H2O parameters SPEC lacks: name -> (status, note, (type, H2O default, inert))
H2O_ONLY = {name: entry for name, entry in H2O_PARAMETERS.items() if entry[2] is not None}
NOT_YET = tuple(name for name, entry in H2O_ONLY.items() if entry[0] == NOT_SUPPORTED)  # refused but inert values
# what an H2O parameter SPEC lacks sets when it is true
MAPPED = {"score_each_iteration": {"score_interval": 0.0, "score_duty_cycle": 1.0}}
