package hybridmix.ci.flink;

import java.io.File;
import java.util.ArrayList;
import java.util.List;
import org.apache.beam.sdk.util.construction.resources.PipelineResourcesDetector;

/** Resources to stage: the entries of java.class.path only (no scan of manifest Class-Path). */
public class JavaClassPathDetectorFactory implements PipelineResourcesDetector.Factory {
  public static JavaClassPathDetectorFactory create() {
    return new JavaClassPathDetectorFactory();
  }

  @Override
  public PipelineResourcesDetector getPipelineResourcesDetector() {
    return classLoader -> {
      List<String> files = new ArrayList<>();
      for (String entry : System.getProperty("java.class.path").split(File.pathSeparator)) {
        if (!entry.isEmpty() && new File(entry).exists()) {
          files.add(new File(entry).getAbsolutePath());
        }
      }
      return files;
    };
  }
}
