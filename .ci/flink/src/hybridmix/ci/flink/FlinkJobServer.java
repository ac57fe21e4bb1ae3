package hybridmix.ci.flink;

import org.apache.beam.model.pipeline.v1.RunnerApi;
import org.apache.beam.runners.flink.FlinkJobInvoker;
import org.apache.beam.runners.flink.FlinkJobServerDriver;
import org.apache.beam.runners.flink.FlinkJobServerDriver.FlinkServerConfiguration;
import org.apache.beam.runners.jobsubmission.JobInvocation;
import org.apache.beam.sdk.io.FileSystems;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.vendor.grpc.v1p60p1.com.google.protobuf.Struct;
import org.apache.beam.vendor.grpc.v1p60p1.com.google.protobuf.Value;
import org.apache.beam.vendor.guava.v32_1_2_jre.com.google.common.util.concurrent.ListeningExecutorService;

/**
 * Beam's FlinkJobServerDriver (same flags), except that every job stages only the entries of
 * java.class.path, i.e. the thin launcher jar that .ci/flink/setup.sh builds, instead of the
 * ~150 MB of jars that Beam's default ClassGraph scan finds by following that jar's manifest
 * Class-Path. The TaskManager loads the thin jar and resolves its absolute Class-Path entries
 * from the local disk, so this only works when the job server and the Flink cluster share a
 * machine (CI). A job that sets --pipeline_resources_detector_factory_class itself keeps its own.
 */
public final class FlinkJobServer {
  static final String DETECTOR_OPTION = "beam:option:pipeline_resources_detector_factory_class:v1";

  private FlinkJobServer() {}

  public static void main(String[] args) throws Exception {
    FileSystems.setDefaultPipelineOptions(PipelineOptionsFactory.create());
    FlinkServerConfiguration config = FlinkJobServerDriver.parseArgs(args);
    FlinkJobServerDriver.fromConfig(config, () -> new Invoker(config)).run();
  }

  static final class Invoker extends FlinkJobInvoker {
    Invoker(FlinkServerConfiguration config) {
      super(config);
    }

    @Override
    protected JobInvocation invokeWithExecutor(
        RunnerApi.Pipeline pipeline,
        Struct options,
        String retrievalToken,
        ListeningExecutorService executorService) {
      if (!options.containsFields(DETECTOR_OPTION)) {
        options =
            options.toBuilder()
                .putFields(
                    DETECTOR_OPTION,
                    Value.newBuilder()
                        .setStringValue(JavaClassPathDetectorFactory.class.getName())
                        .build())
                .build();
      }
      return super.invokeWithExecutor(pipeline, options, retrievalToken, executorService);
    }
  }
}
