# The naive way, for the cross-build benchmark only (not what the java plugin writes): build
# inside the per-platform stage, so for linux/arm64 and linux/arm/v7 Maven and javac run
# under QEMU. Build with this folder as the context.
ARG MIRROR=localhost:5000/library
FROM ${MIRROR}/maven:3-eclipse-temurin-17
WORKDIR /src
COPY . .
RUN mvn --batch-mode --no-transfer-progress -DskipTests package && \
    cp target/arch-sample-1.0.0.jar /app.jar
ENTRYPOINT ["java", "-jar", "/app.jar"]
