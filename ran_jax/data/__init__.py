"""The data layer: data sets (one record each), image operations and tf.data streams."""
